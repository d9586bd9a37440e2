"""Books that stay on disk: the chunked synthetic writer and the lazy (engine) door into movements and cohorts.

The lazy door is a second implementation of the time gate (in ibis rather than pandas), so it is held equal to the
pandas door on books where the gate matters: as_of in the middle of the window cuts terms short and hides later ends."""
import pandas as pd
import pytest

from csbench.book import Book
from csbench.cohorts import retention_table
from csbench.engine import connect, scan_book
from csbench.revenue import known_subscriptions, known_subscriptions_expr, mrr_movements, retention_rates
from csbench.schema import BookError
from csbench.synth import simulate_book, write_synthetic_book
from csbench.engine import execute


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
    "A 700-account book written in 3 chunks by 2 worker processes."
    path = tmp_path_factory.mktemp("chunked") / "book"
    write_synthetic_book(path, 700, start="2023-01-01", months=24, seed=5, chunk_accounts=250, workers=2, progress=False)
    return path


def test_chunked_book_is_valid_and_tagged(chunked):
    book = Book.read(chunked)   # validates: unique ids, foreign keys, dates, ranges
    assert len(book.accounts) == 700
    assert book.accounts.account_id.str[:3].value_counts().sort_index().tolist() == [250, 250, 200]
    assert book.subscriptions.account_id.isin(book.accounts.account_id).all()
    assert (chunked / "usage.parquet").is_dir() and len(list((chunked / "usage.parquet").glob("part-*.parquet"))) == 3


def test_chunked_book_same_whatever_the_workers(chunked, tmp_path):
    one = write_synthetic_book(tmp_path / "one", 700, start="2023-01-01", months=24, seed=5, chunk_accounts=250, workers=1,
                               progress=False)
    a, b = Book.read(chunked), Book.read(one)
    for t in a.tables: pd.testing.assert_frame_equal(a.tables[t], b.tables[t], obj=t)
    other = write_synthetic_book(tmp_path / "seed6", 700, start="2023-01-01", months=24, seed=6, chunk_accounts=250,
                                 progress=False)
    assert not Book.read(other).subscriptions.mrr.equals(a.subscriptions.mrr)


def test_one_chunk_is_simulate_book(tmp_path):
    path = write_synthetic_book(tmp_path / "b", 120, start="2023-01-01", months=12, seed=9, progress=False)
    assert (path / "subscriptions.parquet").is_file()
    ref, _ = simulate_book(120, start="2023-01-01", months=12, seed=9)
    got = Book.read(path)
    for t in ref.tables: pd.testing.assert_frame_equal(got.tables[t], ref.tables[t], obj=t)


def test_chunked_csv_equals_parquet(chunked, tmp_path):
    csv = write_synthetic_book(tmp_path / "csv", 700, start="2023-01-01", months=24, seed=5, chunk_accounts=250,
                               format="csv", progress=False)
    a, b = Book.read(chunked), Book.read(csv)
    for t in ("accounts", "subscriptions", "invoices"): pd.testing.assert_frame_equal(a.tables[t], b.tables[t], obj=t)


@pytest.mark.parametrize("as_of", ["2023-08-15", "2024-06-30", "2024-12-31"])
def test_lazy_known_subscriptions_equal_pandas(chunked, as_of):
    book, lazy = Book.read(chunked), scan_book(chunked)
    key = ["subscription_id"]
    a = known_subscriptions(book, as_of, by="touch_model").sort_values(key).reset_index(drop=True)
    b = execute(known_subscriptions_expr(lazy, as_of, by="touch_model")).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert (a.end_date.isna() | (a.end_date > pd.Timestamp(as_of))).any()   # the gate did cut something


@pytest.mark.parametrize("kw", [dict(freq="M"), dict(freq="Q", by="touch_model"), dict(freq="Q-MAR", by=["billing", "industry"]),
                                dict(freq="M", reactivation_window_months=2)],
                         ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_lazy_movements_equal_pandas(chunked, kw):
    book, lazy = Book.read(chunked), scan_book(chunked)
    a = mrr_movements(book, as_of="2024-09-30", **kw)
    b = mrr_movements(lazy, as_of="2024-09-30", **kw)
    assert a.churn.sum() > 0 and a.new.sum() > 0
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(retention_rates(a, definition="capped-12m"), retention_rates(b, definition="capped-12m"))


@pytest.mark.parametrize("kw", [dict(kind="logo"), dict(kind="revenue", by="touch_model"),
                                dict(kind="logo", include_returns=False, period="Q")],
                         ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_lazy_cohorts_equal_pandas(chunked, kw):
    book, lazy = Book.read(chunked), scan_book(chunked)
    pd.testing.assert_frame_equal(retention_table(book, as_of="2024-09-30", **kw),
                                  retention_table(lazy, as_of="2024-09-30", **kw))


def test_twelve_months_false_drops_only_the_year_columns(chunked):
    lazy = scan_book(chunked)
    full = mrr_movements(lazy, as_of="2024-09-30", freq="Q")
    short = mrr_movements(lazy, as_of="2024-09-30", freq="Q", twelve_months=False)
    assert "base_mrr_12m" not in short and "base_mrr_12m" in full
    pd.testing.assert_frame_equal(full[short.columns], short)
    with pytest.raises(BookError, match="12-month columns"): retention_rates(short, definition="capped-12m")


def test_lazy_errors_name_table_column_and_rows(tmp_path):
    con = connect()
    subs = simulate_book(60, start="2023-01-01", months=12, seed=2)[0].subscriptions
    bad = con.create_table("bad_mrr", subs.assign(mrr=subs.mrr.where(subs.index != 3)))
    with pytest.raises(BookError) as e: mrr_movements(bad, as_of="2023-12-31")
    msg = str(e.value)
    assert "subscriptions" in msg and "mrr" in msg and subs.subscription_id.iloc[3] in msg
    missing = con.create_table("no_term", subs.drop(columns=["term_months"]))
    with pytest.raises(BookError, match="term_months"): retention_table(missing, as_of="2023-12-31")
    with pytest.raises(BookError, match="no book.yaml|book.yaml"): scan_book(tmp_path)


def test_cli_synth_writes_large_books_in_chunks(tmp_path):
    from typer.testing import CliRunner
    from csbench.cli import app
    r = CliRunner().invoke(app, ["synth", str(tmp_path / "big"), "--accounts", "300", "--months", "12",
                                 "--chunk-accounts", "100", "--workers", "1", "--format", "parquet"])
    assert r.exit_code == 0, r.output
    assert "in 3 chunks" in r.output
    book = Book.read(tmp_path / "big")
    assert len(book.accounts) == 300 and book.accounts.account_id.str[:2].nunique() == 3
    r = CliRunner().invoke(app, ["synth", str(tmp_path / "big.duckdb"), "--accounts", "300", "--chunk-accounts", "100",
                                 "--format", "duckdb"])
    assert r.exit_code == 1 and "--format parquet" in r.output
