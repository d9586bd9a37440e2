"""Properties of `mrr_movements` / `retention_rates` / `reconcile_definitions` on random books, checked against a
plain-Python reference implementation of the documented rules (period-end snapshots, movement classification,
reactivation window, churn recognition, the 12-month columns)."""
import os
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from csbench.book import _truncate_subscriptions
from csbench.revenue import (CAPPED, COUNTS, MOVEMENTS, RECONCILE, mrr_movements, period_months, reconcile_definitions,
                             retention_rates, total)

BASE = pd.Timestamp("2023-01-01")
REASONS = ["renewed", "upgraded", "downgraded", "cancelled_voluntary", "cancelled_involuntary"]
FREQS = ["M", "Q", "Y", "Q-MAR"]
N = int(os.environ.get("CSBENCH_HYPOTHESIS_EXAMPLES", 40))    # raise it for a longer search


@st.composite
def books(draw, cents=False):
    "A few accounts with overlapping, gapped, open and scheduled terms; touch models with gaps; a random as_of."
    rows, n_acc = [], draw(st.integers(1, 5))
    money = st.decimals(0, 500, places=2).map(float) if cents else st.integers(0, 500).map(float)
    for a in range(n_acc):
        for r in range(draw(st.integers(1, 4))):
            start = BASE + pd.Timedelta(days=draw(st.integers(0, 900)))
            billing = draw(st.sampled_from(["monthly", "annual"]))
            how = draw(st.sampled_from(["open", "days", "term"]))
            end = (None if how == "open" else start + pd.Timedelta(days=draw(st.integers(1, 500))) if how == "days"
                   else start + pd.DateOffset(months=12))
            cancel = draw(st.one_of(st.none(), st.integers(0, 400).map(lambda d: start + pd.Timedelta(days=d))))
            rows.append(dict(subscription_id=f"S{a}-{r}", account_id=f"A{a}", product=draw(st.sampled_from(["x", "y"])),
                             use_case=None, start_date=start, end_date=end, term_months=1 if billing == "monthly" else 12,
                             billing=billing, mrr=draw(money), list_mrr=None,
                             end_reason=None if end is None else draw(st.sampled_from([None, *REASONS])),
                             cancelled_at=cancel))
    subs = pd.DataFrame(rows)
    subs["end_date"] = pd.to_datetime(subs.end_date)
    subs["cancelled_at"] = pd.to_datetime(subs.cancelled_at)
    accounts = pd.DataFrame({"account_id": [f"A{a}" for a in range(n_acc)],
                             "touch": [draw(st.sampled_from([None, "high", "tech"])) for _ in range(n_acc)]})
    as_of = BASE + pd.Timedelta(days=draw(st.integers(20, 1100)))
    return subs, accounts, as_of


def reference(subs, accounts, as_of, freq, by, recognition, window):
    "The documented rules, account by account, period by period."
    t, step = pd.Timestamp(as_of), period_months(freq)
    s = _truncate_subscriptions(subs, t)
    if s.empty: return None, []
    if recognition == "cancellation":
        c = s.cancelled_at.where(s.cancelled_at <= t)
        s["end_date"] = [min(e, x) if pd.notna(x) and pd.notna(e) else (x if pd.notna(x) else e) for e, x in zip(s.end_date, c)]
    if by == "touch":
        s = s.merge(accounts, on="account_id", how="left")
        s["touch"] = s.touch.fillna("unassigned")
    seg = by or "_all"
    if seg == "_all": s["_all"] = "all"
    ps = pd.period_range(s.start_date.min(), t, freq=freq)
    ends = [p.end_time.normalize() for p in ps if p.end_time.normalize() <= t]
    K, P = len(ends), 12 // step
    if not K: return None, ends
    pairs = s[["account_id", seg]].drop_duplicates().itertuples(index=False)
    out = {}
    for acc, sg in pairs:
        rows = s[(s.account_id == acc) & (s[seg] == sg)]
        m = [sum(r.mrr for r in rows.itertuples() if r.start_date <= d and (pd.isna(r.end_date) or r.end_date > d)) for d in ends]
        mv, last_paid = [], None
        for k in range(K):
            m0, m1 = (m[k - 1] if k else 0.0), m[k]
            e = dict(new=0.0, expansion=0.0, contraction=0.0, churn=0.0, reactivation=0.0, m0=m0, m1=m1)
            if m0 == 0 and m1 > 0:
                back = last_paid is not None and (window is None or (k - last_paid - 1) * step <= window)
                e["reactivation" if back else "new"] = m1
            elif m0 > 0 and m1 == 0: e["churn"] = m0
            elif m0 > 0 and m1 > m0: e["expansion"] = m1 - m0
            elif m0 > 0 and m1 < m0: e["contraction"] = m0 - m1
            if m1 > 0: last_paid = k
            mv.append(e)
        for k in range(K):
            o = out.setdefault((sg, k), dict.fromkeys(MOVEMENTS + COUNTS + CAPPED + RECONCILE, 0.0))
            e = mv[k]
            for col, key in [("start_mrr", "m0"), ("end_mrr", "m1"), ("new", "new"), ("expansion", "expansion"),
                             ("contraction", "contraction"), ("churn", "churn"), ("reactivation", "reactivation")]:
                o[col] += e[key]
            for col, key in [("accounts_start", "m0"), ("accounts_end", "m1"), ("new_accounts", "new"),
                             ("expanded_accounts", "expansion"), ("contracted_accounts", "contraction"),
                             ("churned_accounts", "churn"), ("reactivated_accounts", "reactivation")]:
                o[col] += e[key] > 0
            then, now = (m[k - P] if k >= P else 0.0), m[k]
            win = mv[max(k - P + 1, 0): k + 1]
            losses = sum(x["contraction"] + x["churn"] for x in win)
            gains = sum(x["expansion"] + x["new"] + x["reactivation"] for x in win)
            returns = sum(x["new"] + x["reactivation"] for x in win)
            churns = sum(x["churn"] > 0 for x in win)
            if then > 0:
                o["base_mrr_12m"] += then; o["kept_mrr_12m"] += now; o["capped_mrr_12m"] += min(now, then)
                o["base_accounts_12m"] += 1; o["kept_accounts_12m"] += now > 0
                o["regained_losses_12m"] += min(losses, gains); o["base_returns_12m"] += returns
                o["repeat_churns_12m"] += churns - (now == 0)
            else:
                o["joiner_losses_12m"] += losses; o["joiner_churns_12m"] += churns
                o["joiner_expansion_12m"] += sum(x["expansion"] for x in win)
    ref = pd.DataFrame([{seg: sg, "k": k, **v} for (sg, k), v in out.items()])
    return ref.sort_values(["k", seg]).reset_index(drop=True), ends


@settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=books(), freq=st.sampled_from(FREQS), by=st.sampled_from([None, "touch", "product"]),
       recognition=st.sampled_from(["term_end", "cancellation"]), window=st.sampled_from([None, 0, 1, 3, 12]))
def test_movements_match_the_documented_rules(book, freq, by, recognition, window):
    subs, accounts, as_of = book
    got = mrr_movements(subs, as_of=as_of, freq=freq, by=by, accounts=accounts, churn_recognition=recognition,
                        reactivation_window_months=window)
    ref, ends = reference(subs, accounts, as_of, freq, by, recognition, window)
    if not ends:
        assert got.empty
        return
    assert list(got.period_end.unique()) == ends
    seg = by or "_all"
    if by is None: got = got.assign(_all="all")
    got = got.assign(k=got.groupby(seg).cumcount()).sort_values(["k", seg]).reset_index(drop=True)
    # every segment appears in every period, with zeros where nothing happened
    assert len(got) == len(ends) * got[seg].nunique()
    merged = got.merge(ref, on=[seg, "k"], how="left", suffixes=("", "_ref")).fillna(0)
    for c in MOVEMENTS + COUNTS + CAPPED + RECONCILE:
        np.testing.assert_allclose(merged[c].to_numpy(float), merged[c + "_ref"].to_numpy(float), atol=1e-9, err_msg=c)
    # the identity, exactly (integer MRR); start = previous end
    lhs = got.start_mrr + got.new + got.expansion - got.contraction - got.churn + got.reactivation
    assert (lhs == got.end_mrr).all()
    assert (got.accounts_start + got.new_accounts + got.reactivated_accounts - got.churned_accounts == got.accounts_end).all()
    assert (got.groupby(seg).end_mrr.shift(fill_value=0.0) == got.start_mrr).all()


@settings(max_examples=max(N // 2, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=books(cents=True), freq=st.sampled_from(["M", "Q"]))
def test_identity_with_cents_and_segments_add_up(book, freq):
    subs, accounts, as_of = book
    whole = mrr_movements(subs, as_of=as_of, freq=freq)
    parts = mrr_movements(subs, as_of=as_of, freq=freq, by="touch", accounts=accounts)
    lhs = whole.start_mrr + whole.new + whole.expansion - whole.contraction - whole.churn + whole.reactivation
    np.testing.assert_allclose(lhs, whole.end_mrr, rtol=0, atol=1e-6)     # sums are exact decimals; floats at the end
    cols = MOVEMENTS + COUNTS + CAPPED + RECONCILE
    np.testing.assert_allclose(total(parts)[cols].to_numpy(float), whole[cols].to_numpy(float), atol=1e-6)


@settings(max_examples=max(N // 2, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=books(), freq=st.sampled_from(["M", "Q"]))
def test_reconciliation_splits_the_gap_exactly(book, freq):
    subs, accounts, as_of = book
    m = mrr_movements(subs, as_of=as_of, freq=freq, by="touch", accounts=accounts)
    t = reconcile_definitions(m).table.dropna(subset=["grr_capped"])
    np.testing.assert_allclose(t.grr_gap, t.grr_gap_joiners + t.grr_gap_regained, atol=1e-12)
    np.testing.assert_allclose(t.nrr_gap, t.nrr_gap_joiners + t.nrr_gap_returns, atol=1e-12)
    np.testing.assert_allclose(t.logo_churn_gap, t.logo_gap_joiners + t.logo_gap_repeat, atol=1e-12)
    assert (t.grr_gap <= 1e-12).all() and (t.logo_churn_gap >= -1e-12).all()       # movement-sum is the stricter of the two
    r = retention_rates(m)
    ok = r.base_mrr > 0
    assert ((r.grr[ok] >= -1e-12) & (r.grr[ok] <= 1 + 1e-12)).all()
    assert (r.nrr[ok] >= r.grr[ok] - 1e-12).all()
