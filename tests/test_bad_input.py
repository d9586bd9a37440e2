"""Bad input a user can cause: each case breaks one table of a valid book and asserts that the error names the
table, the column, the rule and the offending rows (by id or value)."""
import pandas as pd
import pytest
from csbench.book import Book, BookMeta
from csbench.schema import BookError


def _first(df, col):
    return df[col].iloc[0]


def _set(col, value, n=1):
    "Mutation: set `col` of the first n rows to `value`."
    def f(df):
        df = df.copy()
        df[col] = df[col].astype(object)
        df.loc[df.index[:n], col] = value
        return df
    return f


def _swap_dates(a, b):
    "Mutation: make `b` one day before `a` on the first row that has `b`."
    def f(df):
        df = df.copy()
        i = df[df[b].notna()].index[0]
        df.loc[i, b] = df.loc[i, a] - pd.Timedelta(days=1)
        return df
    return f


def _duplicate_first(df):
    return pd.concat([df, df.iloc[:1]], ignore_index=True)


def _where(kind_col, kind, col, value):
    def f(df):
        df = df.copy()
        i = df[df[kind_col] == kind].index[0]
        df[col] = df[col].astype(object)
        df.loc[i, col] = value
        return df
    return f


CASES = [  # id, table, mutation, column named, rule words
    ("accounts-duplicate-id", "accounts", _duplicate_first, "account_id", "must be unique"),
    ("accounts-bad-date", "accounts", _set("created_at", "last spring"), "created_at", "must be a date"),
    ("accounts-touch-model", "accounts", _set("touch_model", "vip"), "touch_model", "must be one of"),
    ("accounts-negative-employees", "accounts", _set("employees", -5), "employees", ">= 0"),
    ("accounts-missing-column", "accounts", lambda d: d.drop(columns=["industry"]), "industry", "required column is missing"),
    ("subscriptions-negative-mrr", "subscriptions", _set("mrr", -100.0), "mrr", ">= 0"),
    ("subscriptions-mrr-not-number", "subscriptions", _set("mrr", "lots"), "mrr", "must be a number"),
    ("subscriptions-end-before-start", "subscriptions", _swap_dates("start_date", "end_date"), "start_date, end_date", "end_date must be after start_date"),
    ("subscriptions-list-below-mrr", "subscriptions", lambda d: d.assign(list_mrr=d.list_mrr.where(d.index > 0, d.mrr / 2)), "mrr, list_mrr", "list_mrr must be >= mrr"),
    ("subscriptions-unknown-account", "subscriptions", _set("account_id", "NO-SUCH-ACCOUNT"), "account_id", "must exist in accounts"),
    ("subscriptions-end-reason", "subscriptions", _set("end_reason", "lost"), "end_reason", "must be one of"),
    ("subscriptions-billing", "subscriptions", _set("billing", "weekly"), "billing", "must be one of"),
    ("subscriptions-term-zero", "subscriptions", _set("term_months", 0), "term_months", ">= 1"),
    ("subscriptions-duplicate-id", "subscriptions", _duplicate_first, "subscription_id", "must be unique"),
    ("usage-duplicate-key", "usage", _duplicate_first, "account_id, period, metric", "must be unique"),
    ("usage-negative", "usage", _set("value", -1.0), "value", ">= 0"),
    ("tickets-priority", "tickets", _set("priority", "P5"), "priority", "must be one of"),
    ("tickets-closed-before-opened", "tickets", _swap_dates("opened_at", "closed_at"), "opened_at, closed_at", "closed_at must be on or after opened_at"),
    ("invoices-due-before-issued", "invoices", _swap_dates("issued_at", "due_at"), "issued_at, due_at", "due_at must be on or after issued_at"),
    ("invoices-negative-amount", "invoices", _set("amount", -10.0), "amount", ">= 0"),
    ("invoices-two-currencies", "invoices", lambda d: d.assign(currency=["USD"] + ["JPY"] * (len(d) - 1)), "currency", "one currency"),
    ("surveys-nps-out-of-range", "surveys", _where("kind", "nps", "score", 11.0), "kind, score", "nps 0-10"),
    ("surveys-csat-out-of-range", "surveys", _where("kind", "csat", "score", 0.0), "kind, score", "csat 1-5"),
    ("surveys-kind", "surveys", _set("kind", "ces"), "kind", "must be one of"),
    ("contacts-role", "contacts", _set("role", "ceo"), "role", "must be one of"),
    ("contacts-left-before-start", "contacts", _swap_dates("started_at", "left_at"), "started_at, left_at", "left_at must be on or after started_at"),
    ("csms-capacity-zero", "csms", _set("capacity_hours_month", 0.0), "capacity_hours_month", "> 0"),
    ("activities-kind", "activities", _set("kind", "lunch"), "kind", "must be one of"),
    ("activities-unknown-csm", "activities", _set("csm_id", "CSM-NOBODY"), "csm_id", "must exist in csms"),
    ("milestones-duplicate", "milestones", _duplicate_first, "account_id, milestone", "must be unique"),
    ("milestones-kind", "milestones", _set("milestone", "party"), "milestone", "must be one of"),
]


@pytest.mark.parametrize("table,mutate,column,rule", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_table_names_table_column_rule_and_rows(small_book, table, mutate, column, rule):
    tables = dict(small_book.tables)
    broken = mutate(tables[table].copy())
    tables[table] = broken
    with pytest.raises(BookError) as e:
        Book(small_book.meta, **tables)
    msg = str(e.value)
    hits = [v for v in e.value.violations if v.table == table and v.column == column]
    assert hits, f"no violation for {table}.{column}:\n{msg}"
    v = hits[0]
    assert rule in v.rule, msg
    assert f"table '{table}'" in msg and f"column '{column}'" in msg
    if v.n_rows:                          # offending rows are shown with their ids
        assert 1 <= len(v.rows) and v.n_rows <= len(broken)
        idcol = v.rows.columns[0]
        assert str(v.rows[idcol].iloc[0]) in msg


def test_all_violations_of_a_table_reported_together(small_book):
    s = small_book.subscriptions.copy()
    s.loc[s.index[0], "mrr"] = -1.0
    s.loc[s.index[1], "billing"] = "weekly"
    s.loc[s.index[2], "account_id"] = "GHOST"
    with pytest.raises(BookError) as e:
        Book(small_book.meta, **{**small_book.tables, "subscriptions": s})
    cols = {v.column for v in e.value.violations if v.table == "subscriptions"}
    assert {"mrr", "billing", "account_id"} <= cols


def test_bad_currency_in_book_yaml(small_book, tmp_path):
    small_book.write(tmp_path / "b")
    meta = (tmp_path / "b" / "book.yaml").read_text().replace("currency: JPY", "currency: yen")
    (tmp_path / "b" / "book.yaml").write_text(meta)
    with pytest.raises(BookError, match="currency"):
        Book.read(tmp_path / "b")


def test_unparseable_csv_value_reported_with_row(small_book, tmp_path):
    small_book.write(tmp_path / "b")
    f = tmp_path / "b" / "tickets.csv"
    lines = f.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("opened_at")] = "31/02/2024"
    lines[1] = ",".join(row)
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(BookError) as e:
        Book.read(tmp_path / "b")
    msg = str(e.value)
    assert "table 'tickets'" in msg and "column 'opened_at'" in msg and "31/02/2024" in msg and row[0] in msg


def test_missing_required_table_and_yaml(small_book, tmp_path):
    small_book.write(tmp_path / "b")
    (tmp_path / "b" / "subscriptions.csv").unlink()
    with pytest.raises(BookError, match="subscriptions"):
        Book.read(tmp_path / "b")
    (tmp_path / "b" / "book.yaml").unlink()
    with pytest.raises(BookError, match="book.yaml"):
        Book.read(tmp_path / "b")
    with pytest.raises(BookError, match="No book at"):
        Book.read(tmp_path / "nowhere")
