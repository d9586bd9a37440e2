"""The monthly panel on the engine: held equal to the pandas code it replaced (tests/_panel_reference.py) on books and
dates where the time gate matters, read in place from Parquet, with its semantics checked by hand on a tiny book."""
import pandas as pd
import pytest

from csbench.book import Book
from csbench.engine import scan_book
from csbench.frames import monthly_panel
from csbench.schema import BookError
from _panel_reference import old_monthly_panel

AS_OFS = ["2026-03-31", "2025-11-15", "2025-02-28", "2024-06-30", "2023-02-01", "2023-01-20"]


@pytest.mark.parametrize("as_of", AS_OFS)
def test_panel_equals_the_pandas_reference(sample_book, as_of):
    new, old = monthly_panel(sample_book, as_of), old_monthly_panel(sample_book, as_of)
    if len(old): pd.testing.assert_frame_equal(new, old)
    else: assert new.empty and list(new.columns) == list(old.columns)   # the old code's dtypes of an empty frame varied
    assert new.dtypes[["open_p1p2", "days_overdue", "touches"]].eq("int64").all() and new.oldest_p1p2_days.dtype == "float64"


def test_panel_equals_reference_on_a_small_book_and_without_optional_tables(small_book):
    for as_of in ("2025-06-30", "2024-12-15"):
        pd.testing.assert_frame_equal(monthly_panel(small_book, as_of), old_monthly_panel(small_book, as_of))
    bare = Book(small_book.meta, small_book.accounts, small_book.subscriptions)
    got = monthly_panel(bare, "2025-06-30")
    assert list(got.columns) == ["account_id", "month", "mrr", "churn_next_month"]   # no table, no column (never zeros)
    pd.testing.assert_frame_equal(got, old_monthly_panel(bare, "2025-06-30"))


@pytest.fixture(scope="module")
def sample_parquet(sample_book, tmp_path_factory):
    path = tmp_path_factory.mktemp("panel") / "book"
    sample_book.write(path, format="parquet")
    return path


@pytest.mark.parametrize("as_of", ["2026-03-31", "2025-08-14"])
def test_panel_of_a_lazy_book_equals_the_book(sample_book, sample_parquet, as_of):
    lazy = scan_book(sample_parquet)
    pd.testing.assert_frame_equal(monthly_panel(lazy, as_of), monthly_panel(sample_book, as_of))


def _tiny(**tables):
    from csbench.book import BookMeta
    acc = pd.DataFrame({"account_id": ["A1"], "account_name": ["Acme"], "industry": ["retail"], "region": ["kanto"],
                        "employees": [10], "potential_arr": [None], "brand_tier": [None], "referenceable": [None],
                        "channel": ["direct"], "created_at": ["2025-01-01"], "csm_id": [None], "touch_model": ["tech_touch"]})
    subs = pd.DataFrame({"subscription_id": ["S1"], "account_id": ["A1"], "product": ["core"], "use_case": [None],
                         "start_date": ["2025-01-10"], "end_date": ["2025-05-20"], "term_months": [1], "billing": ["monthly"],
                         "mrr": [1000.0], "list_mrr": [None], "end_reason": ["cancelled_voluntary"]})
    return Book(BookMeta(name="tiny", currency="JPY"), acc, subs, **tables)


def test_panel_by_hand_months_churn_and_survey_ties():
    sv = pd.DataFrame({"response_id": ["R1", "R2", "R3"], "account_id": "A1", "contact_id": None,
                       "answered_at": ["2025-02-03", "2025-02-03", "2025-04-30"], "kind": "nps", "score": [3.0, 9.0, 6.0]})
    p = monthly_panel(_tiny(surveys=sv), "2025-06-30")
    # the term runs 2025-01-10 .. 2025-05-20: the month ends Jan..Apr fall inside it; churn in May flags April
    assert p.month.dt.strftime("%Y-%m").tolist() == ["2025-01", "2025-02", "2025-03", "2025-04"]
    assert p.churn_next_month.tolist() == [False, False, False, True]
    # two answers on 2025-02-03: the one recorded last (R2) is the latest; carried forward to March; R3 from April
    assert p.nps.tolist()[1:] == [9.0, 9.0, 6.0] and pd.isna(p.nps.iloc[0])
    # as_of inside May: April is complete, its next month is not, so its churn flag is unknown
    q = monthly_panel(_tiny(surveys=sv), "2025-05-15")
    assert q.month.dt.strftime("%Y-%m").tolist() == ["2025-01", "2025-02", "2025-03", "2025-04"]
    assert q.churn_next_month.isna().tolist() == [False, False, False, True]


def test_usage_metric_named_like_a_panel_column_is_refused():
    u = pd.DataFrame({"account_id": "A1", "period": ["2025-02-01"], "metric": ["mrr"], "value": [5.0]})
    with pytest.raises(BookError, match=r"usage metric name\(s\) \['mrr'\] clash"):
        monthly_panel(_tiny(usage=u), "2025-06-30")


def test_panel_refuses_what_is_not_a_book():
    with pytest.raises(BookError, match="expected a csbench Book or a LazyBook"):
        monthly_panel(pd.DataFrame({"a": [1]}), "2025-06-30")
