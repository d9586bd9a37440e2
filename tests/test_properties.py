"""Properties that hold for any book or table, checked with hypothesis: retention rates within their bounds under both
definitions, logo retention shares within 0-1 and first-lifetime shares never above those with returns, Kaplan-Meier
curves that never rise, health scores within 0-100 and scorecard weights that sum to 100.

`test_revenue_properties.py` already checks the movement identity, the reference implementation and, for the
one-period movement-sum rates, 0 <= GRR <= 1 and NRR >= GRR; `test_cohorts_properties.py` checks that logo shares never
rise without returns. This file covers what they do not."""
import warnings
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from csbench.cohorts import retention_table
from csbench.health import COMPONENTS, Component, HealthCalibrator, Scorecard
from csbench.revenue import mrr_movements, retention_rates
from csbench.survival import kaplan_meier
from test_revenue_properties import books

N = int(os.environ.get("CSBENCH_HYPOTHESIS_EXAMPLES", 40))
FEW = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPS = 1e-12


# -- revenue ----------------------------------------------------------------------------------------------------------
@settings(max_examples=max(N // 4, 8), **FEW)
@given(book=books(cents=True), freq=st.sampled_from(["M", "Q", "Y", "Q-MAR"]), by=st.sampled_from([None, "touch"]))
def test_capped_rates_stay_in_bounds(book, freq, by):
    "capped-12m: 0 <= GRR <= 1, NRR >= GRR, logo churn in 0-1, for every period and segment with a base."
    subs, accounts, as_of = book
    m = mrr_movements(subs, as_of=as_of, freq=freq, by=by, accounts=accounts)
    r = retention_rates(m, definition="capped-12m")
    has = r.base_mrr > 0
    assert r.loc[~has, ["grr", "nrr"]].isna().all().all()          # no base: undefined, never 0 or 1
    g, n, lc = r.grr[has], r.nrr[has], r.logo_churn[has]
    assert ((g >= -EPS) & (g <= 1 + EPS)).all()
    assert (n >= g - EPS).all()
    assert ((lc >= -EPS) & (lc <= 1 + EPS)).all()


@settings(max_examples=max(N // 4, 8), **FEW)
@given(book=books(cents=True), freq=st.sampled_from(["M", "Q"]))
def test_trailing_movement_sum_nrr_is_at_least_grr_and_grr_at_most_one(book, freq):
    "movement-sum over 12 months: NRR - GRR is the expansion share (>= 0) and GRR <= 1 (losses are >= 0)."
    subs, accounts, as_of = book
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # periods where the rate is undefined are left empty (tested below)
        r = retention_rates(mrr_movements(subs, as_of=as_of, freq=freq), months=12)
    has = (r.base_mrr > 0) & r.grr.notna()
    assert (r.nrr[has] >= r.grr[has] - EPS).all() and (r.grr[has] <= 1 + EPS).all()


def test_trailing_movement_sum_grr_is_not_negative():
    subs = pd.DataFrame(dict(subscription_id=["S1", "S2"], account_id=["A1", "A2"], product="x", use_case=None,
                             start_date=pd.to_datetime(["2023-01-01", "2023-03-01"]),
                             end_date=pd.to_datetime([None, "2023-06-01"]), term_months=1, billing="monthly",
                             mrr=[100.0, 1000.0], list_mrr=None, end_reason=[None, "cancelled_voluntary"]))
    with pytest.warns(UserWarning, match="joined inside the window exceed the MRR at its start"):
        r = retention_rates(mrr_movements(subs, as_of="2024-03-31"), months=12)
    assert (r.grr.dropna() >= 0).all() and (r.logo_churn.dropna() <= 1).all(), r[["period", "grr", "base_mrr"]]
    assert r.grr.isna().any() and r.grr.notna().any()   # the impossible periods are empty, the others kept


# -- cohorts ------------------------------------------------------------------------------------------------------------
@settings(max_examples=max(N // 4, 8), **FEW)
@given(book=books(), cohort=st.sampled_from(["M", "Q"]), period=st.sampled_from(["M", "Q"]))
def test_logo_shares_are_shares_and_first_lifetime_is_a_subset(book, cohort, period):
    "Logo shares lie in 0-1, start at 1, and counting only the first lifetime never gives more than counting returns."
    subs, _, as_of = book
    kw = dict(as_of=as_of, cohort=cohort, period=period, kind="logo")
    with_returns, first_only = retention_table(subs, include_returns=True, **kw), retention_table(subs, include_returns=False, **kw)
    if with_returns.empty:
        assert first_only.empty
        return
    a, b = with_returns.iloc[:, 1:], first_only.iloc[:, 1:].reindex_like(with_returns.iloc[:, 1:])
    assert ((a.fillna(0) >= -EPS) & (a.fillna(0) <= 1 + EPS)).all().all()
    assert (a[0].dropna() == 1).all() and (b[0].dropna() == 1).all()
    assert (b.fillna(0) <= a.fillna(0) + EPS).all().all()
    assert (with_returns.accounts == first_only.accounts).all()


# -- survival -----------------------------------------------------------------------------------------------------------
@st.composite
def survival_tables(draw):
    n = draw(st.integers(1, 40))
    dur = draw(st.lists(st.integers(0, 36).map(float), min_size=n, max_size=n))
    ev = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    grp = draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n))
    w = draw(st.lists(st.floats(0.5, 1000.0), min_size=n, max_size=n))
    return pd.DataFrame({"duration": dur, "event": ev, "seg": grp, "arr": w})


@settings(max_examples=N, **FEW)
@given(df=survival_tables(), by=st.sampled_from([None, "seg"]), weighted=st.booleans())
def test_km_never_rises(df, by, weighted):
    "Kaplan-Meier survival starts at 1 or below, never rises, stays in 0-1 and inside its interval; at risk never rises."
    km = kaplan_meier(df, by=by, weights="arr" if weighted else None)
    s = km.survival_
    for g, c in s.groupby("group"):
        c = c.sort_values("time")
        v = c.survival.to_numpy()
        assert ((v >= -EPS) & (v <= 1 + EPS)).all() and (np.diff(v) <= EPS).all()
        if not weighted:
            assert (c.lower.to_numpy() <= v + 1e-9).all() and (v <= c.upper.to_numpy() + 1e-9).all()
    times = [0, 6, 12, 24, 36]
    assert (np.diff(km.at_risk(times).to_numpy(), axis=1) <= 0).all()
    at = km.survival_at(times).to_numpy()
    d = np.diff(at, axis=1)
    assert (np.isnan(d) | (d <= EPS)).all()
    # NaN exactly past each group's longest follow-up (not observed), never before it
    longest = np.array([f.durations.max() for f in km.fitters_.values()])     # each group's own rows, as fitted
    np.testing.assert_array_equal(np.isnan(at), np.asarray(times)[None, :] > longest[:, None])


# -- health -------------------------------------------------------------------------------------------------------------
names = st.lists(st.sampled_from(list(COMPONENTS)), min_size=1, max_size=6, unique=True)


@st.composite
def scorecards(draw):
    comps = draw(names)
    w = draw(st.lists(st.floats(0, 50, allow_nan=False), min_size=len(comps), max_size=len(comps)))
    if sum(w) <= 0: w[0] = 1.0
    missing = draw(st.sampled_from(["reweight", 0, 50.0, 100]))
    lo = draw(st.floats(0, 100)); hi = draw(st.floats(lo, 100))
    return Scorecard(dict(zip(comps, w)), bands=(lo, hi), missing=missing)


@settings(max_examples=N, **FEW)
@given(sc=scorecards(), data=st.data())
def test_scorecard_weights_sum_to_100_and_scores_stay_in_0_100(sc, data):
    w = pd.Series(sc.weights)
    assert np.isclose(w.sum(), 100) and (w >= 0).all()
    f = sc.to_frame()
    assert f.points.sum() == 100 and (f.points >= 0).all() and (f.points - f.weight).abs().max() < 1.01
    n = data.draw(st.integers(1, 12))
    sub = st.one_of(st.none(), st.floats(0, 100))
    frame = pd.DataFrame({k: data.draw(st.lists(sub, min_size=n, max_size=n)) for k in sc.components}, dtype=float)
    frame.insert(0, "account_id", [f"A{i}" for i in range(n)])
    out = sc.score(frame)
    h = out.health.to_numpy(dtype=float)
    ok = ~np.isnan(h)
    assert ((h[ok] >= -1e-9) & (h[ok] <= 100 + 1e-9)).all()
    assert ((out.coverage >= -1e-9) & (out.coverage <= 1 + 1e-9)).all()
    if sc.missing == "reweight": assert (ok == (out.coverage.to_numpy() > 0)).all()
    else: assert ok.all()
    red, green = h[ok] < sc.bands[0], h[ok] >= sc.bands[1]
    st_ = out.status.to_numpy()[ok]
    assert (st_[red] == "red").all() and (st_[green & ~red] == "green").all()


@settings(max_examples=N, **FEW)
@given(edges=st.lists(st.floats(-100, 100), min_size=1, max_size=4, unique=True), data=st.data())
def test_component_subscores_stay_in_0_100(edges, data):
    edges = tuple(sorted(edges))
    scores = tuple(data.draw(st.lists(st.floats(0, 100), min_size=len(edges) + 1, max_size=len(edges) + 1)))
    c = Component("x", "x", edges, scores, closed=data.draw(st.sampled_from(["left", "right"])))
    x = np.array(data.draw(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(np.nan)), min_size=1, max_size=20)))
    s = c.subscore(x)
    assert (np.isnan(s) == np.isnan(x)).all()
    assert ((s[~np.isnan(s)] >= 0) & (s[~np.isnan(s)] <= 100)).all()


@settings(max_examples=max(N // 4, 8), **FEW)
@given(n=st.integers(12, 60), p=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_learned_weights_sum_to_100(n, p, seed):
    "HealthCalibrator's learned weights are >= 0 and sum to 100 (or are all NaN when no component predicts churn)."
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 100, (n, p))
    X[rng.random((n, p)) < 0.1] = np.nan
    y = (rng.random(n) < 0.3).astype(int)
    y[:2] = [0, 1]                                                  # two classes
    m = HealthCalibrator(prior_strength=1.0, recalibrate=False, n_bootstrap=0).fit(X, y)
    w = m.weights_
    if m.coef_.sum() > 0:
        assert np.isclose(w.sum(), 100) and (w >= -1e-9).all()
        sc = m.to_scorecard(bands=(40, 70))
        assert np.isclose(sum(sc.weights.values()), 100)
    else:
        assert w.isna().all()
