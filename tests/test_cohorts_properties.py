"""Properties of `retention_table` / `average_retention` on random books, against a plain-Python reference of the
documented rules (cohort of the first paid start, age on each account's own anniversaries, a cell only when every
member reached the age, first lifetime only without returns)."""
import os
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings, strategies as st

from csbench.book import _truncate_subscriptions
from csbench.cohorts import average_retention, retention_table
from test_revenue_properties import books

N = int(os.environ.get("CSBENCH_HYPOTHESIS_EXAMPLES", 40))
STEP = {"M": 1, "Q": 3, "Y": 12}


def reference(subs, accounts, as_of, cohort, period, kind, include_returns, by):
    t = pd.Timestamp(as_of)
    s = _truncate_subscriptions(subs, t)
    s = s[s.mrr > 0]
    if s.empty: return None
    rows = []
    for acc, r in s.groupby("account_id"):
        r = r.sort_values(["start_date", "mrr"], ascending=[True, False])
        start, first_end, reach = r.start_date.iloc[0], None, None
        for x in r.itertuples():                              # end of the first run of terms without a gap
            end = x.end_date if pd.notna(x.end_date) else pd.Timestamp.max
            if reach is not None and x.start_date > reach and first_end is None: first_end = reach
            reach = end if reach is None else max(reach, end)
        first_end = first_end or reach
        seg = accounts.set_index("account_id").touch.get(acc) if by else None
        a = 0
        while (d := start + pd.DateOffset(months=a * STEP[period])) <= t:
            m = sum(x.mrr for x in r.itertuples() if x.start_date <= d and (pd.isna(x.end_date) or x.end_date > d))
            if not include_returns and d >= first_end: m = 0.0
            rows.append(dict(seg=seg if seg is not None else "unassigned", cohort=start.to_period(cohort), age=a, m=m,
                             last=start))
            a += 1
    df = pd.DataFrame(rows)
    size = df[df.age == 0].groupby(["seg", "cohort"]).agg(n=("m", "size"), m0=("m", "sum"), last=("last", "max"))
    out = {}
    for (seg, c, a), g in df.groupby(["seg", "cohort", "age"]):
        n, m0, last = size.loc[(seg, c)]
        if last + pd.DateOffset(months=a * STEP[period]) > t: continue     # not every member reached this age
        out[(seg, c, a)] = (g.m > 0).sum() / n if kind == "logo" else g.m.sum() / m0
    return size, out


@settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=books(), cohort=st.sampled_from(["M", "Q", "Y"]), period=st.sampled_from(["M", "Q", "Y"]),
       kind=st.sampled_from(["logo", "revenue"]), include_returns=st.booleans(), by=st.booleans())
def test_retention_table_matches_the_documented_rules(book, cohort, period, kind, include_returns, by):
    subs, accounts, as_of = book
    got = retention_table(subs, as_of=as_of, cohort=cohort, period=period, kind=kind, include_returns=include_returns,
                          by="touch" if by else None, accounts=accounts)
    ref = reference(subs, accounts, as_of, cohort, period, kind, include_returns, by)
    if ref is None:
        assert got.empty
        return
    size, cells = ref
    g = got if by else pd.concat({"unassigned": got}, names=["touch"])
    assert sorted(g.index) == sorted(size.index)
    size_col = "accounts" if kind == "logo" else "start_mrr"
    np.testing.assert_allclose(g[size_col].loc[size.index].to_numpy(float), (size.n if kind == "logo" else size.m0).to_numpy(float))
    filled = {(s, c, a): v for (s, c), row in g.iloc[:, 1:].iterrows() for a, v in row.items() if pd.notna(v)}
    assert filled.keys() == cells.keys()
    for k, v in cells.items():
        assert np.isclose(filled[k], v, atol=1e-12, equal_nan=True), (k, filled[k], v)
    if not include_returns and kind == "logo":           # first lifetime only: never rises
        assert (g.iloc[:, 1:].diff(axis=1).fillna(0) <= 1e-12).all().all()
    avg = average_retention(got)
    assert (avg.iloc[:, 1:].fillna(0) >= 0).all().all()
    if kind == "logo":
        assert (avg.iloc[:, 1:].fillna(0) <= 1 + 1e-12).all().all() and (avg[0].dropna() == 1).all()
