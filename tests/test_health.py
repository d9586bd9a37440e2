"""csbench.health outside the chapter: scikit-learn's estimator checks, leakage on another book, books with tables
missing, scorecard properties, a backtest straight from a Book, and (slow) recovery of planted weights."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.utils.estimator_checks import parametrize_with_checks

from csbench.book import Book
from csbench.health import (COMPONENTS, SYNTH_DRIVER_COMPONENTS, HealthCalibrator, Scorecard, attach_outcomes, backtest,
                            default_scorecard, from_vendor, health_components, subscores)
from csbench.schema import BookError
from csbench.synth import simulate_book

AS_OF = "2024-12-31"          # the small book (conftest) runs 2023-01 .. 2024-12


@parametrize_with_checks([HealthCalibrator(n_bootstrap=5),
                          HealthCalibrator(prior_strength=3.0, n_bootstrap=0, recalibrate=False)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def later(book: Book, s: str) -> Book:
    "The book plus copies of rows moved after `s` (new ids), and every date after `s` moved 5 days later."
    s = pd.Timestamp(s)
    t = {k: v.copy() for k, v in book.tables.items()}
    dates = {"subscriptions": ["start_date", "end_date"], "tickets": ["opened_at", "closed_at"],
             "invoices": ["issued_at", "due_at", "paid_at"], "surveys": ["answered_at"], "contacts": ["started_at", "left_at", "unsubscribed_at"],
             "activities": ["at"], "health_scores": ["at"]}
    ids = {"subscriptions": "subscription_id", "tickets": "ticket_id", "invoices": "invoice_id", "surveys": "response_id",
           "contacts": "contact_id", "activities": "activity_id"}
    for name, cols in dates.items():
        df = t[name]
        for c in cols: df[c] = df[c].where(~(df[c] > s), df[c] + pd.Timedelta(days=5))
        copy = df.sample(min(300, len(df)), random_state=1).copy()
        move = s + pd.to_timedelta(1 + np.arange(len(copy)) % 30, unit="D") - copy[cols[0]]
        for c in cols: copy[c] = copy[c] + move
        if name in ids: copy[ids[name]] = "F" + copy[ids[name]]
        if name == "surveys": copy["contact_id"] = None
        both = pd.concat([df, copy], ignore_index=True)
        t[name] = both.drop_duplicates(["account_id", "at", "source"]) if name == "health_scores" else both
    u = t["usage"]
    nxt = (s + pd.offsets.MonthBegin(1)).normalize()
    fut = u[u.period == u.period.max()].assign(period=pd.Timestamp("2030-01-01"), value=999.0)
    u.loc[u.period + pd.offsets.MonthBegin(1) > s + pd.Timedelta(days=1), "value"] += 50
    t["usage"] = pd.concat([u, fut], ignore_index=True)
    ms = t["milestones"]
    ms["reached_at"] = ms.reached_at.where(~(ms.reached_at > s), ms.reached_at + pd.Timedelta(days=5))
    assert nxt > s
    return Book(book.meta, **t)


@pytest.fixture(scope="module")
def small_vendor(small_book):
    "The small book with a vendor score every month end + 3 days."
    c = health_components(small_book, pd.date_range("2023-03-31", "2024-11-30", freq="ME"))
    rng = np.random.default_rng(0)
    hs = pd.DataFrame({"account_id": c.account_id, "at": c.snapshot + pd.Timedelta(days=3),
                       "score": rng.integers(0, 101, len(c)).astype(float), "source": "acme"})
    return small_book.replace(health_scores=hs)


@pytest.mark.parametrize("s", ["2023-06-30", "2024-01-15", "2024-08-31"])
def test_rows_after_the_snapshot_change_nothing(small_vendor, s):
    fab = later(small_vendor, s)
    assert len(fab.tickets) > len(small_vendor.tickets)
    a, b = health_components(small_vendor, s), health_components(fab, s)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(from_vendor(small_vendor.health_scores).score(a), from_vendor(fab.health_scores).score(b))


def test_missing_tables_give_missing_measures(small_book):
    bare = Book(small_book.meta, small_book.accounts, small_book.subscriptions)
    c = health_components(bare, "2024-06-30")
    assert len(c) == len(health_components(small_book, "2024-06-30"))
    for m in ("seat_utilisation", "p1p2_open_last_month", "days_overdue", "nps_min_6m", "sponsor_present",
              "days_to_first_goal", "touches_90d"):
        assert c[m].isna().all(), m                        # no table: explicit NaN, never a silent 0
    assert c.tenure_months.notna().all() and c.months_to_renewal.notna().all()
    sc = default_scorecard().score(c)
    assert sc.health.isna().all() and (sc.coverage == 0).all() and sc.status.isna().all()
    sub = subscores(c)
    assert sub.renewal.notna().all() and sub.adoption.isna().all()


def test_backtest_from_a_book_picks_up_the_vendor_score(small_vendor):
    bt = backtest(default_scorecard(), small_vendor, horizon_months=3, as_of=AS_OF, min_train_snapshots=3)
    assert {"hand", "vendor", "arr_only", "tenure_only", "usage_only"} == set(bt.summary_.index)
    assert bt.summary_.loc["vendor", "auc"] == pytest.approx(0.5, abs=0.2)     # random scores rank at chance
    assert (bt.scores_.snapshot <= pd.Timestamp(AS_OF) - pd.DateOffset(months=3)).all()


def test_bad_input(small_book):
    with pytest.raises(BookError, match="several sources"):
        hs = pd.DataFrame({"account_id": ["A000001"] * 2, "at": pd.to_datetime(["2024-01-01"] * 2), "score": [50.0, 60], "source": ["a", "b"]})
        from_vendor(hs)
    with pytest.raises(BookError, match="required column is missing"):
        from_vendor(pd.DataFrame({"account_id": ["A1"], "score": [3.0]}))
    with pytest.raises(BookError, match="scores Scorecard"):
        backtest({"mine": 42}, small_book, as_of=AS_OF)
    with pytest.raises(BookError, match="must be a Book or a frame"):
        backtest(default_scorecard(), [1, 2], as_of=AS_OF)
    with pytest.raises(BookError, match="missing must be"):
        Scorecard({"nps": 1}, missing="zero")
    with pytest.raises(BookError, match="does not exist"):
        Scorecard.from_csv("/nonexistent/scorecard.csv")
    with pytest.raises(ValueError, match="prior_strength"):
        HealthCalibrator(prior_strength=-1).fit(np.array([[0.0], [100], [0], [100]]), [0, 1, 1, 0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=3, max_size=3), st.lists(st.floats(0.1, 10), min_size=3, max_size=3),
       st.integers(0, 2), st.floats(0, 100))
def test_health_is_a_monotone_weighted_mean(sub, weights, j, up):
    "Health lies in 0-100, and raising any sub-score never lowers it (both missing policies)."
    names = ["adoption", "nps", "renewal"]
    for missing in ("reweight", 100.0):
        sc = Scorecard(dict(zip(names, weights)), missing=missing)
        f = pd.DataFrame([sub, [max(v, up) if i == j else v for i, v in enumerate(sub)]], columns=names)
        f.insert(0, "account_id", ["a", "b"])
        h = sc.score(f).health.to_numpy()
        assert 0 <= h[0] <= 100 + 1e-9 and h[1] >= h[0] - 1e-9


def _recovery(n_accounts: int, seed: int):
    "Learned (no shrinkage, static drivers as controls) vs planted weights: monthly accounts, next-month voluntary churn."
    book, truth = simulate_book(n_accounts, start="2023-01-01", months=36, seed=seed, validate=False)
    d = attach_outcomes(health_components(book, pd.date_range("2023-01-31", "2025-11-30", freq="ME")), book,
                        horizon_months=1, as_of="2025-12-31")
    d = d[(d.billing == "monthly") & d.horizon_complete & d.cause.ne("involuntary")]
    ctl = pd.DataFrame({"high_touch": d.touch_model.eq("high_touch"), "low_touch": d.touch_model.eq("low_touch"),
                        "discount_20plus": d.discount >= 0.2, "retail": d.industry.eq("retail"),
                        "finance": d.industry.eq("finance"), "self_serve": d.channel.eq("self_serve")}).astype(float)
    names = list(SYNTH_DRIVER_COMPONENTS)
    cal = HealthCalibrator(prior_strength=0.0, controls=list(ctl.columns), n_bootstrap=200, random_state=seed)
    cal.fit(pd.concat([subscores(d, names)[names], ctl], axis=1), d.churned.astype(int), groups=d.account_id)
    planted = pd.Series({c: 100 * truth.health_weights[k] for c, k in SYNTH_DRIVER_COMPONENTS.items()})
    return cal.summary_.assign(planted=planted)


@pytest.mark.slow
def test_intervals_cover_the_planted_weights():
    "95 % intervals over 12 books of 2,000 accounts cover the planted weight at least 90 % of the time."
    r = pd.concat([_recovery(2000, seed) for seed in range(1, 13)])
    rate = ((r.lower <= r.planted) & (r.planted <= r.upper)).mean()
    print(f"coverage {rate:.1%} of {len(r)} intervals")
    assert rate >= 0.90


@pytest.mark.slow
def test_top_components_in_planted_order():
    "On a book of 20,000 accounts the three largest learned weights are the three largest planted, in order."
    s = _recovery(20000, 1)
    assert list(s.weight.sort_values(ascending=False).index[:3]) == list(s.planted.sort_values(ascending=False).index[:3])
