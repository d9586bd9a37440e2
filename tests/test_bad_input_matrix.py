"""The bad-input matrix: small broken inputs through the public entry points - `Book.read` on files written to a
temporary folder, `from_account_snapshot`, `csbench validate` and the main analyses - each asserting the specific
message (table, column, rule, rows by CSV line) or a documented repair and the `BookWarning` that reports it."""
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from csbench.book import Book, from_account_snapshot
from csbench.cli import app
from csbench.schema import BookError, BookWarning
from csbench import cohorts, health, revenue, survival

AS_OF = "2024-12-31"          # the small book's data end


# -- helpers ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def book_dir(small_book, tmp_path_factory):
    "The small book written once as CSV."
    d = tmp_path_factory.mktemp("matrix") / "book"
    small_book.write(d)
    return d


@pytest.fixture
def folder(book_dir, tmp_path):
    "A fresh copy of the small book's CSV folder, to break."
    d = tmp_path / "book"
    shutil.copytree(book_dir, d)
    return d


def rows(d, table) -> pd.DataFrame:
    "A table of the folder as strings, exactly as in the file."
    return pd.read_csv(d / f"{table}.csv", dtype=str, keep_default_na=False)


def put(d, table, df, encoding="utf-8", **kw):
    (d / f"{table}.csv").write_bytes(df.to_csv(index=False, lineterminator="\n", **kw).encode(encoding))


def edit(d, table, fn):
    "Rewrite `table`.csv with fn(its rows as strings)."
    put(d, table, fn(rows(d, table).copy()))
    return d


def set_cell(d, table, row, column, value):
    return edit(d, table, lambda df: df.assign(**{column: df[column].where(df.index != row, value)}))


def text(d, table, fn):
    "Rewrite `table`.csv with fn(its text)."
    f = d / f"{table}.csv"
    f.write_text(fn(f.read_text(encoding="utf-8")), encoding="utf-8")
    return d


def read_error(path) -> BookError:
    with pytest.raises(BookError) as e:
        Book.read(path)
    return e.value


def one(err: BookError, table: str, column: str):
    "The one violation of `table`.`column` (fails, showing the message, when there is none or several)."
    hits = [v for v in err.violations if v.table == table and v.column == column]
    assert len(hits) == 1, f"expected one violation of {table}.{column}:\n{err}"
    return hits[0]


def book_warnings(fn):
    "fn() and the messages of the BookWarnings it gave."
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(x.message) for x in w if issubclass(x.category, BookWarning)]


# -- Book.read: columns and header ----------------------------------------------------------------------------------
def test_missing_column(folder):
    e = read_error(edit(folder, "accounts", lambda df: df.drop(columns="industry")))
    v = one(e, "accounts", "industry")
    assert v.rule.startswith("required column is missing (the table has: account_id, account_name, region")
    assert "table 'accounts' (accounts.csv), column 'industry'" in str(e)


def test_misnamed_column_names_the_likely_culprit(folder):
    e = read_error(text(folder, "accounts", lambda s: s.replace("account_id,", " Account_ID,", 1)))
    assert "' Account_ID' looks like it: rename it to 'account_id'" in one(e, "accounts", "account_id").rule


def test_semicolon_separated_file(folder):
    put(folder, "accounts", rows(folder, "accounts"), sep=";")
    e = read_error(folder)
    assert "the file seems to be separated by ';', and csbench reads comma-separated files" in one(e, "accounts", "").rule


def test_extra_columns_are_kept_with_japanese_names_and_values(folder, small_book):
    memo = ["製造業の大口顧客"] + ["—"] * (len(small_book.accounts) - 1)
    book, warned = book_warnings(lambda: Book.read(edit(folder, "accounts", lambda df: df.assign(メモ=memo))))
    assert warned == [] and book.accounts["メモ"].tolist() == memo


def test_column_named_twice_in_the_header(folder):
    e = read_error(text(folder, "accounts", lambda s: s.replace(",region,", ",industry,", 1)))
    assert one(e, "accounts", "industry").rule == "the header names this column more than once; keep one"


# -- Book.read: types ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("table,column,value,rule", [
    ("subscriptions", "mrr", "lots", "must be a number"),
    ("subscriptions", "term_months", "1.5", "must be a whole number"),
    ("accounts", "referenceable", "maybe", "must be true/false (yes/no, 1/0)"),
    ("accounts", "created_at", "31/12/2024", "must be a date (YYYY-MM-DD)"),
    ("subscriptions", "start_date", "2025-02-30", "must be a real calendar date (no such day; check the day and the month)"),
    ("subscriptions", "end_date", "9999-12-31", "must be a date between 1678 and 2261 (for no end, leave the cell empty instead of a far-future date)"),
    ("subscriptions", "mrr", "1e400", "must be a finite number"),
    ("subscriptions", "mrr", "¥30,000", "must be a plain number without a currency sign (the book's currency is set in book.yaml)"),
    ("subscriptions", "start_date", "", "must not be empty"),
], ids=["not-a-number", "not-whole", "not-bool", "day-first-date", "impossible-date", "far-future-date", "absurd-amount",
        "currency-sign", "nan-in-key-date"])
def test_wrong_value_names_table_column_rule_and_line(folder, table, column, value, rule):
    e = read_error(set_cell(folder, table, 3, column, value))
    v = one(e, table, column)
    assert v.rule == rule and v.n_rows == 1 and v.source == f"{table}.csv"
    assert v.rows.index.tolist() == [5], "data row 3 is line 5 of the file (the header is line 1)"
    assert "1 row (line numbers of " + f"{table}.csv)" in str(e) and str(v.rows.iloc[0, 0]) in str(e)
    if value: assert value in str(e)


# -- Book.read: rules across rows and tables ---------------------------------------------------------------------------
def test_end_before_start(folder):
    def f(df):
        i = df.index[df.end_date != ""][0]
        df.loc[i, "end_date"] = (pd.Timestamp(df.loc[i, "start_date"]) - pd.Timedelta(days=1)).date().isoformat()
        return df
    e = read_error(edit(folder, "subscriptions", f))
    v = one(e, "subscriptions", "start_date, end_date")
    assert v.rule == "end_date must be after start_date" and v.n_rows == 1 and v.rows.index[0] >= 2


def test_duplicate_ids_show_both_lines(folder, small_book):
    e = read_error(edit(folder, "subscriptions", lambda df: pd.concat([df, df.iloc[:1]], ignore_index=True)))
    v = one(e, "subscriptions", "subscription_id")
    n = len(small_book.subscriptions)
    assert v.rule == "must be unique" and v.rows.index.tolist() == [2, n + 2]


def test_orphan_foreign_key(folder):
    e = read_error(set_cell(folder, "tickets", 0, "account_id", "GHOST"))
    v = one(e, "tickets", "account_id")
    assert v.rule == "every account_id must exist in accounts.account_id" and v.rows.index.tolist() == [2]
    assert "GHOST" in str(e)


def test_negative_amount(folder):
    v = one(read_error(set_cell(folder, "invoices", 1, "amount", "-500")), "invoices", "amount")
    assert v.rule == "must be >= 0" and v.rows.index.tolist() == [3]


def test_mixed_currencies_in_a_table(folder):
    e = read_error(edit(folder, "subscriptions", lambda df: df.assign(currency=["USD"] + ["JPY"] * (len(df) - 1))))
    v = one(e, "subscriptions", "currency")
    assert v.rule == "the book has one currency (JPY); convert amounts before loading" and v.rows.index.tolist() == [2]


def test_two_currencies_in_book_yaml(folder):
    y = folder / "book.yaml"
    y.write_text(y.read_text().replace("currency: JPY", "currency: JPY, USD"))
    assert "must be one ISO 4217 code such as 'JPY' or 'USD', got 'JPY, USD'" in str(read_error(folder))


def test_overlapping_terms_warn_and_name_the_term(folder, small_book):
    def twice(df):
        dup = df.iloc[[0]].assign(subscription_id="S-TWICE")
        return pd.concat([df, dup], ignore_index=True)
    book, warned = book_warnings(lambda: Book.read(edit(folder, "subscriptions", twice)))
    assert len(book.subscriptions) == len(small_book.subscriptions) + 1 and len(warned) == 1
    assert "1 term starts before an earlier term of the same account and product has ended" in warned[0]
    assert "S-TWICE" in warned[0] and "subscriptions.csv" in warned[0]


# -- Book.read: empty tables and files ---------------------------------------------------------------------------------
def test_required_table_with_header_only(folder):
    e = read_error(text(folder, "subscriptions", lambda s: s.split("\n", 1)[0] + "\n"))
    assert one(e, "subscriptions", "").rule.startswith("the table has no rows")


def test_optional_table_with_header_only_means_nothing_happened(folder):
    book = Book.read(text(folder, "tickets", lambda s: s.split("\n", 1)[0] + "\n"))
    assert book.tickets is not None and book.tickets.empty and list(book.tickets.columns)[:2] == ["ticket_id", "account_id"]


def test_empty_file(folder):
    (folder / "tickets.csv").write_bytes(b"")
    v = one(read_error(folder), "tickets", "")
    assert v.rule.startswith("the file is empty: it needs at least the header line (ticket_id,account_id,") and v.source == "tickets.csv"


# -- Book.read: encodings and spreadsheet habits ----------------------------------------------------------------------
def test_bom_prefixed_csv_is_read(folder, small_book):
    f = folder / "accounts.csv"
    f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    book, warned = book_warnings(lambda: Book.read(folder))
    assert book == small_book and warned == []


def _japanese(df):
    return df.assign(industry=["製造業"] + df.industry.tolist()[1:], account_name=["株式会社テスト"] + df.account_name.tolist()[1:])


def test_cp932_csv_is_read_with_a_warning(folder):
    put(folder, "accounts", _japanese(rows(folder, "accounts")), encoding="cp932")
    book, warned = book_warnings(lambda: Book.read(folder))
    assert book.accounts.industry.iloc[0] == "製造業" and book.accounts.account_name.iloc[0] == "株式会社テスト"
    assert len(warned) == 1 and "table 'accounts' (accounts.csv): the file is not UTF-8; it was read as cp932" in warned[0] and "製造業" in warned[0]


def test_cp932_named_in_book_yaml_needs_no_warning(folder):
    put(folder, "accounts", _japanese(rows(folder, "accounts")), encoding="cp932")
    y = folder / "book.yaml"
    y.write_text(y.read_text() + "encoding: cp932\n")
    book, warned = book_warnings(lambda: Book.read(folder))
    assert book.accounts.industry.iloc[0] == "製造業" and warned == []


def test_file_in_neither_utf8_nor_cp932(folder):
    df = rows(folder, "accounts")
    df.loc[0, "account_name"] = "Café Crème"
    put(folder, "accounts", df, encoding="latin-1")
    v = one(read_error(folder), "accounts", "")
    assert v.rule.startswith("the file is not UTF-8 text (byte 0xe9 on line 2 cannot be decoded). Save it as UTF-8")
    assert v.source == "accounts.csv"


def test_japanese_values_survive_a_round_trip(small_book, tmp_path):
    jp = small_book.replace(accounts=_japanese(small_book.accounts))
    back = Book.read(jp.write(tmp_path / "jp"))
    assert back == jp and back.accounts.industry.iloc[0] == "製造業"


def test_text_with_carriage_returns_and_quotes_survives_a_round_trip(small_book, tmp_path):
    odd = ["Acme\r", 'Multi\nline, "quoted"', "\tTab", "=HYPERLINK(\"x\")"]
    names = (odd * len(small_book.accounts))[:len(small_book.accounts)]
    book = small_book.replace(accounts=small_book.accounts.assign(account_name=names))
    assert Book.read(book.write(tmp_path / "odd")) == book


def test_excel_serial_dates_are_read_with_a_warning(folder, small_book):
    serial = lambda d: str((pd.Timestamp(d) - pd.Timestamp("1899-12-30")).days)
    book, warned = book_warnings(lambda: Book.read(edit(folder, "subscriptions", lambda df: df.assign(start_date=df.start_date.map(serial)))))
    assert book.subscriptions.start_date.equals(small_book.subscriptions.start_date)
    n, first = len(small_book.subscriptions), small_book.subscriptions.start_date.iloc[0]
    assert len(warned) == 1 and f"column 'start_date': {n} values look like Excel serial day numbers" in warned[0]
    assert f"'{serial(first)}' -> {first.date()}" in warned[0]


def test_thousands_separators_are_read_with_a_warning(folder, small_book):
    grouped = lambda v: f"{float(v):,.0f}"
    book, warned = book_warnings(lambda: Book.read(edit(folder, "subscriptions", lambda df: df.assign(mrr=df.mrr.map(grouped)))))
    assert book.subscriptions.mrr.equals(small_book.subscriptions.mrr)
    assert len(warned) == 1 and "column 'mrr'" in warned[0] and "were written with thousands separators" in warned[0]
    assert f"'{grouped(small_book.subscriptions.mrr.iloc[0])}' -> {small_book.subscriptions.mrr.iloc[0]:.15g}" in warned[0]


def test_full_width_digits_are_read_with_a_warning(folder, small_book):
    book, warned = book_warnings(lambda: Book.read(set_cell(folder, "accounts", 1, "employees", "２２０")))
    assert book.accounts.employees.iloc[1] == 220 and len(warned) == 1 and "'２２０' -> 220" in warned[0]


def test_null_marker_in_a_required_id(folder):
    e = read_error(set_cell(folder, "subscriptions", 2, "account_id", "NULL"))
    v = one(e, "subscriptions", "account_id")
    assert v.rule == "must not be empty (found the null marker 'NULL' instead of an id)" and v.rows.index.tolist() == [4]


def test_empty_key_column_value(folder):
    e = read_error(set_cell(folder, "accounts", 0, "account_id", ""))
    assert one(e, "accounts", "account_id").rule == "must not be empty"


def test_null_marker_in_an_optional_id_becomes_null_with_a_warning(folder):
    book, warned = book_warnings(lambda: Book.read(set_cell(folder, "accounts", 0, "csm_id", "nan")))
    assert book.accounts.csm_id.iloc[0] is None
    assert len(warned) == 1 and "column 'csm_id': null markers ('nan') were read as empty values" in warned[0]


# -- Book.read: damaged files ----------------------------------------------------------------------------------------
def test_file_cut_off_mid_row(folder, small_book):
    text(folder, "subscriptions", lambda s: s[:-30])
    v = one(read_error(folder), "subscriptions", "")
    assert v.rule.startswith(f"the file looks cut off: its last line (line {len(small_book.subscriptions) + 1}) has")
    assert v.source == "subscriptions.csv"


def test_double_quote_never_closed(folder):
    text(folder, "accounts", lambda s: s + 'A999999,"Unfinished name,retail,kanto,,,,,,2024-01-01,,\n')
    v = one(read_error(folder), "accounts", "")
    assert "EOF inside string" in v.rule and "a double quote is never closed: the file may be cut off" in v.rule


@pytest.mark.parametrize("where,why", [
    (1, "the first data row has more fields than the header's 5"),       # pandas would make the first column the index
    (2, "Expected 5 fields in line 3, saw 6"),
], ids=["first-row", "later-row"])
def test_unquoted_comma_in_a_value(folder, where, why):
    def f(s):
        lines = s.split("\n")
        lines.insert(where, "CSM009,Sato, Ken,high_touch,140.0,1.0")
        return "\n".join(lines)
    v = one(read_error(text(folder, "csms", f)), "csms", "")
    assert why in v.rule and "a value that holds a comma must be in double quotes" in v.rule


def test_blank_rows_are_skipped(folder, small_book):
    text(folder, "accounts", lambda s: s.replace("\n", "\n\n", 1) + "," * 11 + "\n\n")
    book, warned = book_warnings(lambda: Book.read(folder))
    assert book == small_book and warned == []


def test_line_numbers_count_blank_lines_and_values_over_two_lines(folder, small_book):
    def f(s):
        lines = s.split("\n")
        lines.insert(1, "")                                            # a blank line: the first data row is now line 3
        name = small_book.accounts.account_name.iloc[0]
        lines[2] = lines[2].replace(name, f'"{name}\nHead office"')     # a value over two lines: the next row is line 5
        lines[3] = lines[3].replace(small_book.accounts.created_at.iloc[1].date().isoformat(), "someday")
        return "\n".join(lines)
    v = one(read_error(text(folder, "accounts", f)), "accounts", "created_at")
    assert v.rows.index.tolist() == [5] and v.rows.account_id.iloc[0] == small_book.accounts.account_id.iloc[1]


# -- Book.read: the folder ---------------------------------------------------------------------------------------------
def test_file_named_almost_like_a_table_warns(folder):
    (folder / "tickets.csv").rename(folder / "ticket.csv")
    book, warned = book_warnings(lambda: Book.read(folder))
    assert book.tickets is None and len(warned) == 1 and "ticket.csv was not read: csbench reads this table from tickets.csv" in warned[0]


def test_missing_required_table_lists_the_files_found(folder):
    (folder / "subscriptions.csv").rename(folder / "Subscriptions.csv")
    v = one(read_error(folder), "subscriptions", "")
    assert "no subscriptions.csv or subscriptions.parquet; the folder holds Subscriptions.csv" in v.rule


def test_one_table_file_instead_of_the_folder(folder):
    assert "is one file of a book; read the folder that holds it and book.yaml" in str(read_error(folder / "accounts.csv"))


def test_not_a_duckdb_file(tmp_path):
    f = tmp_path / "book.duckdb"
    f.write_text("not a database")
    assert "is not a DuckDB database csbench can read" in str(read_error(f))


def test_parquet_table_of_strings(small_book, tmp_path):
    d = small_book.write(tmp_path / "pq", format="parquet")
    s = small_book.subscriptions.astype({"mrr": object})
    s.loc[0, "mrr"] = "lots"
    s.astype({"mrr": str}).to_parquet(d / "subscriptions.parquet", index=False)
    e = read_error(d)
    v = one(e, "subscriptions", "mrr")
    assert v.rule == "must be a number" and v.source == "subscriptions.parquet" and v.rows.index.tolist() == [0]
    assert "table 'subscriptions' (subscriptions.parquet)" in str(e)


# -- from_account_snapshot -----------------------------------------------------------------------------------------
EXPORT = pd.DataFrame({"customerID": ["7590-VHVEG", "5575-GNVDE", "3668-QPYBK"], "tenure": [1, 34, 2],
                       "MonthlyCharges": ["29.85", "56.95", "53.85"], "Churn": ["No", "No", "Yes"],
                       "industry": ["製造業", "小売業", "情報通信業"]})


def snapshot(df=EXPORT, **kw):
    return from_account_snapshot(df, as_of=AS_OF, tenure="tenure", churned="Churn", mrr="MonthlyCharges",
                                 account_id="customerID", **kw)


def snapshot_error(df, **kw) -> BookError:
    with pytest.raises(BookError) as e:
        snapshot(df, **kw)
    return e.value


@pytest.mark.parametrize("change,column,rule", [
    (dict(tenure=[1, 34, 50_000]), "tenure", "tenure must be a number of months from 0 to 1200"),
    (dict(customerID=["7590-VHVEG", None, "3668-QPYBK"]), "customerID", "account ids must not be empty"),
    (dict(customerID=["7590-VHVEG", "7590-VHVEG", "3668-QPYBK"]), "customerID", "account ids must be unique (one row per account)"),
    (dict(MonthlyCharges=["29.85", "$56.95", "53.85"]), "MonthlyCharges",
     "must be a plain number without a currency sign (the book's currency is set in book.yaml)"),
    (dict(Churn=["No", None, "Yes"]), "Churn", "churn flag must be Yes/No, 1/0 or True/False (an empty flag is not allowed)"),
], ids=["absurd-tenure", "nan-id", "duplicate-id", "currency-sign", "empty-flag"])
def test_snapshot_names_the_export_column(change, column, rule):
    v = one(snapshot_error(EXPORT.assign(**change)), "snapshot", column)
    assert v.rule == rule and v.n_rows >= 1 and v.rows.index.name == "row"


def test_snapshot_with_no_rows():
    assert one(snapshot_error(EXPORT.iloc[:0]), "snapshot", "").rule == "the export has no rows"


def test_snapshot_cause_outside_the_churn_reasons():
    v = one(snapshot_error(EXPORT.assign(why=[None, None, "Competitor"]), cause="why"), "snapshot", "why")
    assert v.rule.startswith("the cause of a churned account must be one of ['cancelled_voluntary', 'cancelled_involuntary']")
    assert v.rows.index.tolist() == [2]


def test_snapshot_thousands_separator_is_read_with_a_warning():
    book, warned = book_warnings(lambda: snapshot(EXPORT.assign(MonthlyCharges=["29.85", "1,056.95", "53.85"])))
    assert book.subscriptions.mrr.tolist() == [29.85, 1056.95, 53.85]
    assert len(warned) == 1 and "table 'snapshot', column 'MonthlyCharges'" in warned[0] and "'1,056.95' -> 1056.95" in warned[0]


def test_snapshot_keeps_japanese_values():
    assert snapshot().accounts.industry.tolist() == ["製造業", "小売業", "情報通信業"]


# -- csbench validate ------------------------------------------------------------------------------------------------
runner = CliRunner()


def validate(path):
    return runner.invoke(app, ["validate", str(path)])


def assert_clean_error(r, *words):
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith("Error: ") and "Traceback" not in r.output, r.output
    for w in words: assert w in r.stderr, (w, r.stderr)


def test_cli_cut_off_file(folder):
    assert_clean_error(validate(text(folder, "invoices", lambda s: s[:-15])), "table 'invoices' (invoices.csv)", "looks cut off")


def test_cli_reports_rows_by_line(folder):
    assert_clean_error(validate(set_cell(folder, "subscriptions", 7, "billing", "weekly")),
                       "column 'billing': must be one of ['monthly', 'annual']", "1 row (line numbers of subscriptions.csv)")


def test_cli_file_not_utf8(folder):
    df = rows(folder, "csms")
    df.loc[0, "name"] = "Müller"
    put(folder, "csms", df, encoding="latin-1")
    assert_clean_error(validate(folder), "table 'csms' (csms.csv): the file is not UTF-8 text (byte 0xfc on line 2")


def test_cli_no_book_there(tmp_path):
    assert_clean_error(validate(tmp_path / "nowhere"), "No book at")


def test_cli_cp932_book_is_valid_with_a_warning(folder):
    put(folder, "accounts", _japanese(rows(folder, "accounts")), encoding="cp932")
    with pytest.warns(BookWarning, match="read as cp932"):
        r = validate(folder)
    assert r.exit_code == 0 and "is valid" in r.stdout


# -- analyses --------------------------------------------------------------------------------------------------------
def _one_account(book):
    a = book.subscriptions.account_id.iloc[0]
    return Book(book.meta, book.accounts[book.accounts.account_id == a], book.subscriptions[book.subscriptions.account_id == a])


def test_movements_on_a_bare_table_with_thousands_separators(small_book):
    clean = small_book.subscriptions.iloc[:40]
    s = clean.assign(mrr=clean.mrr.map(lambda v: f"{v:,.0f}"))
    got, warned = book_warnings(lambda: revenue.mrr_movements(s, as_of=AS_OF, freq="Q"))
    pd.testing.assert_frame_equal(got, revenue.mrr_movements(clean, as_of=AS_OF, freq="Q"))
    assert len(warned) == 1 and "thousands separators" in warned[0]


def test_movements_refuse_unknown_mrr():
    with pytest.raises(BookError, match="revenue analyses need the MRR of every term"):
        revenue.mrr_movements(from_account_snapshot(EXPORT, as_of=AS_OF, tenure="tenure", churned="Churn"), as_of=AS_OF)


def test_rows_after_as_of_are_not_used(small_book):
    s = small_book.subscriptions.iloc[:40]
    later = s.iloc[[0]].assign(subscription_id="S-LATER", start_date=pd.Timestamp("2025-03-01"), end_date=pd.NaT, mrr=1e9,
                               list_mrr=np.nan)
    with_later = pd.concat([s, later], ignore_index=True)
    got = revenue.mrr_movements(with_later, as_of=AS_OF, freq="Q")
    pd.testing.assert_frame_equal(got, revenue.mrr_movements(s, as_of=AS_OF, freq="Q"))


def test_as_of_that_is_not_a_date(small_book):
    with pytest.raises(BookError, match="as_of must be a date such as '2025-12-31', got 'end of year'"):
        revenue.mrr_movements(small_book, as_of="end of year")


def test_single_account_revenue_and_cohorts(small_book):
    b = _one_account(small_book)
    r = revenue.retention_rates(revenue.mrr_movements(b, as_of=AS_OF, freq="Q"))
    assert np.isnan(r.grr.iloc[0]) and r.base_mrr.iloc[0] == 0       # no base in the first quarter: undefined, not 0 or 1
    t = cohorts.retention_table(b, as_of=AS_OF, cohort="Q", period="Q")
    assert len(t) == 1 and t.accounts.iloc[0] == 1 and set(t.iloc[0, 1:].dropna().unique()) <= {0.0, 1.0}


def test_cohorts_before_any_data_are_empty(small_book):
    t = cohorts.retention_table(small_book, as_of="2020-01-31")
    assert t.empty and list(t.columns) == ["accounts"]


def test_cohorts_on_a_bare_table_with_a_currency_sign(small_book):
    s = small_book.subscriptions.astype({"mrr": object})
    s.loc[4, "mrr"] = "$300"
    with pytest.raises(BookError) as e:
        cohorts.retention_table(s, as_of=AS_OF, kind="revenue")
    assert one(e.value, "subscriptions", "mrr").rule.startswith("must be a plain number without a currency sign")


SURV = pd.DataFrame({"account_id": ["a", "b", "c", "d"], "duration": [1.0, 3.0, 5.0, 8.0], "event": [0, 0, 0, 0],
                     "x": [0.1, 0.5, 0.2, 0.9]})


def test_km_all_censored_keeps_everyone():
    km = survival.kaplan_meier(SURV)
    assert (km.survival_.survival == 1).all() and np.isinf(km.median_["median"].iloc[0])


def test_km_all_churned_reaches_zero():
    km = survival.kaplan_meier(SURV.assign(event=1))
    assert km.survival_.survival.iloc[-1] == 0 and km.median_["median"].iloc[0] == 3.0


@pytest.mark.parametrize("change,column,rule", [
    (dict(event=["Yes", "No", "No", "Yes"]), "event", "must be 0/1 or True/False (got 'Yes', 'No'; map it first, e.g. df[col].eq('Yes'))"),
    (dict(duration=[1.0, np.nan, 5.0, 8.0]), "duration", "must not be empty"),
    (dict(duration=[1.0, -2.0, 5.0, 8.0]), "duration", "must be >= 0 (a duration cannot be negative)"),
], ids=["event-strings", "nan-duration", "negative-duration"])
def test_km_bad_columns(change, column, rule):
    with pytest.raises(BookError) as e:
        survival.kaplan_meier(SURV.assign(**change))
    v = one(e.value, "kaplan_meier data", column)
    assert v.rule == rule and v.rows.account_id.tolist()[:1] in (["a"], ["b"])


def test_km_no_rows():
    with pytest.raises(BookError, match="no rows"):
        survival.kaplan_meier(SURV.iloc[:0])


def test_cox_all_censored():
    with pytest.raises(BookError, match="no churn"):
        survival.churn_drivers(SURV, covariates=["x"])


def test_cox_no_rows():
    with pytest.raises(BookError, match="no rows"):
        survival.churn_drivers(SURV.iloc[:0], covariates=["x"])


def test_cox_all_churned_fits():
    m = survival.churn_drivers(SURV.assign(event=1), covariates=["x"])
    assert np.isfinite(m.summary_.loc["x", "hazard_ratio"])


def test_cox_single_account():
    with pytest.raises(BookError) as e:
        survival.churn_drivers(SURV.iloc[:1].assign(event=1), covariates=["x"])
    assert one(e.value, "churn_drivers data", "x").rule.startswith("has one value only")


def test_logrank_single_group():
    with pytest.raises(BookError) as e:
        survival.logrank(SURV.assign(seg="a", event=1), by="seg")
    assert one(e.value, "logrank data", "seg").rule == "needs at least two groups; found ['a']"


def test_cumulative_incidence_all_censored():
    with pytest.raises(BookError, match="no churn"):
        survival.cumulative_incidence(SURV.assign(cause=None))


@pytest.mark.parametrize("y", [0, 1], ids=["no-churn", "all-churn"])
def test_health_calibrator_single_class(y):
    X = np.random.default_rng(0).uniform(0, 100, (20, 3))
    with pytest.raises(ValueError, match=rf"HealthCalibrator needs two classes \(churned or not\); y has one class: \[{y}\]"):
        health.HealthCalibrator().fit(X, np.full(20, y))


@pytest.fixture(scope="module")
def no_churn_frame(small_book):
    "Health components at five quarter ends with outcomes, every known outcome set to 'did not churn'."
    snaps = ["2023-09-30", "2023-12-31", "2024-03-31", "2024-06-30", "2024-09-30"]
    f = health.attach_outcomes(health.health_components(small_book, snaps), small_book, horizon_months=3, as_of=AS_OF)
    return f.assign(churned=f.churned.where(f.churned.isna(), False))


def test_backtest_of_a_learned_score_without_churn(no_churn_frame):
    with pytest.raises(ValueError, match="HealthCalibrator needs two classes"):
        health.backtest({"hand": health.default_scorecard(), "learned": health.HealthCalibrator()}, no_churn_frame,
                        as_of=AS_OF, min_train_snapshots=1, include_baselines=False)


def test_backtest_without_churn_says_so(no_churn_frame):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            health.backtest(health.default_scorecard(), no_churn_frame, as_of=AS_OF, min_train_snapshots=1, include_baselines=False)
        except BookError as e:
            assert "churn" in str(e)
            return
    assert any("churn" in str(x.message) for x in w)


def test_outcomes_after_as_of(small_book):
    frame = pd.DataFrame({"account_id": ["A000001"], "snapshot": [pd.Timestamp("2025-06-30")]})
    with pytest.raises(BookError, match="snapshot 2025-06-30 is after as_of 2024-12-31: nothing is known about it yet"):
        health.attach_outcomes(frame, small_book, horizon_months=3, as_of=AS_OF)


def test_backtest_snapshots_after_as_of(small_book):
    with pytest.raises(BookError, match=r"snapshots after as_of 2024-12-31 cannot be evaluated: \['2025-06-30'\]"):
        health.backtest(health.default_scorecard(), small_book, snapshots=["2025-06-30"], as_of=AS_OF)


def test_vendor_score_out_of_range():
    table = pd.DataFrame({"account_id": ["A1", "A2"], "at": ["2024-01-31", "2024-01-31"], "score": [80, 150], "source": "vendor"})
    with pytest.raises(BookError) as e:
        health.from_vendor(table)
    v = one(e.value, "health_scores", "score")
    assert v.rule == "must be <= 100" and v.rows.index.tolist() == [1]


def test_scorecard_negative_weight():
    with pytest.raises(BookError, match=r"Scorecard weights must be >= 0 with a positive sum; got \{'nps': -1, 'csat': 2\}"):
        health.Scorecard({"nps": -1, "csat": 2})


def test_health_measure_that_is_not_a_number():
    frame = pd.DataFrame({"account_id": ["a", "b"], "nps_min_6m": ["9", "n/a?"]})
    with pytest.raises(BookError) as e:
        health.subscores(frame, ["nps"])
    v = one(e.value, "subscores frame", "nps_min_6m")
    assert v.rule == "must be a number" and v.rows.account_id.tolist() == ["b"]
