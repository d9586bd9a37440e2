"""The same ibis expressions on Spark (local[*]) and on DuckDB give identical movements, rates and cohort tables.

Run with `make test-spark` (installs the spark extra; needs Java 17). Skipped, with the reason, without pyspark."""
import importlib.util

import pandas as pd
import pytest

pytestmark = pytest.mark.spark

AS_OF = "2025-09-30"


@pytest.fixture(scope="module")
def spark():
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed: `make test-spark` installs the spark extra")
    from csbench.engine import connect
    con = connect("spark")
    yield con
    con._session.stop()


@pytest.fixture(scope="module")
def duck():
    from csbench.engine import connect
    return connect()


MOVEMENT_CASES = [dict(freq="M"), dict(freq="Q", by="touch_model"), dict(freq="Q-MAR", by=["billing", "industry"]),
                  dict(freq="M", reactivation_window_months=3), dict(freq="Y")]


@pytest.mark.parametrize("kw", MOVEMENT_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_movements_and_rates_equal(sample_book, spark, duck, kw):
    from csbench.revenue import mrr_movements, retention_rates
    a = mrr_movements(sample_book, as_of=AS_OF, con=duck, **kw)
    b = mrr_movements(sample_book, as_of=AS_OF, con=spark, **kw)
    assert len(a) > 0 and a.new.sum() > 0
    pd.testing.assert_frame_equal(a, b)
    for definition in ("movement-sum", "capped-12m"):
        pd.testing.assert_frame_equal(retention_rates(a, definition=definition), retention_rates(b, definition=definition))


@pytest.mark.parametrize("kw", [dict(kind="logo"), dict(kind="revenue"), dict(kind="logo", by="touch_model", period="Q"),
                                dict(kind="logo", include_returns=False, cohort="M")],
                         ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_cohort_tables_equal(sample_book, spark, duck, kw):
    from csbench.cohorts import retention_table
    a = retention_table(sample_book, as_of=AS_OF, con=duck, **kw)
    b = retention_table(sample_book, as_of=AS_OF, con=spark, **kw)
    assert a.shape[0] > 4 and a.iloc[:, 1].notna().all()
    pd.testing.assert_frame_equal(a, b)


def test_lazy_parquet_book_on_spark_equals_pandas_book(tmp_path, spark):
    "A chunked Parquet book read in place by Spark gives the movements and cohorts of the same book loaded in pandas."
    from csbench.book import Book
    from csbench.cohorts import retention_table
    from csbench.engine import scan_book
    from csbench.revenue import mrr_movements
    from csbench.synth import write_synthetic_book
    path = write_synthetic_book(tmp_path / "book", 600, start="2023-01-01", months=24, seed=3, chunk_accounts=250,
                                progress=False)
    lazy, book = scan_book(path, con=spark), Book.read(path)
    assert book.accounts.account_id.str.match(r"^A[0-2]-\d{6}$").all() and len(book.accounts) == 600
    pd.testing.assert_frame_equal(mrr_movements(lazy, as_of="2024-12-31", freq="Q", by="touch_model"),
                                  mrr_movements(book, as_of="2024-12-31", freq="Q", by="touch_model"))
    pd.testing.assert_frame_equal(retention_table(lazy, as_of="2024-12-31", kind="revenue"),
                                  retention_table(book, as_of="2024-12-31", kind="revenue"))


@pytest.mark.parametrize("as_of", [AS_OF, "2025-11-15"])
def test_monthly_panel_equal(sample_book, spark, duck, as_of):
    "The monthly panel (seven tables, range joins, windows) is the same on Spark and DuckDB, mid-month as_of included."
    from csbench.frames import monthly_panel
    a = monthly_panel(sample_book, as_of, con=duck)
    b = monthly_panel(sample_book, as_of, con=spark)
    assert len(a) > 20_000 and a.nps.notna().any() and a.churn_next_month.any()
    pd.testing.assert_frame_equal(a, b)
