"""The monthly panel as pandas computed it before the engine rewrite (03_frames, commit 84ec75f): the reference the
ibis `monthly_panel` is tested against. Test code only. One change: answers of the same day are ordered by
response_id (the old code left such ties to an unstable sort; the engine takes the highest response_id)."""
from __future__ import annotations
import numpy as np
import pandas as pd
from csbench.book import Book, as_timestamp
from csbench.frames import _known, _FAR, customer_spells

def _month_index(d: pd.Series) -> np.ndarray:
    return (d.dt.year * 12 + d.dt.month - 1).to_numpy().astype("int64")

def _month_end(k: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(pd.DataFrame({"year": k // 12, "month": k % 12 + 1, "day": 1})) + pd.offsets.MonthEnd(0)

def _expand(df: pd.DataFrame, start: str, end: str, k_max: int) -> pd.DataFrame:
    "Repeat each interval row [start, end) once per month whose last day falls inside it (months <= k_max)."
    k0 = _month_index(df[start])
    e = df[end].fillna(_FAR)
    k1 = np.minimum(_month_index(e) - 1, k_max)
    n = np.clip(k1 - k0 + 1, 0, None)
    rows = np.repeat(np.arange(len(df)), n)
    k = k0[rows] + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    out = df.iloc[rows].reset_index(drop=True)
    out["_k"] = k
    return out

def old_monthly_panel(book: Book,  # the book
                  as_of,       # only months complete by this date are included
                 ) -> pd.DataFrame:
    "Account x month panel at month ends: MRR, usage, tickets, overdue days, surveys, sponsor, touches."
    t = as_timestamp(as_of)
    b = _known(book, t, "usage", "tickets", "invoices", "surveys", "contacts", "activities")
    k_max = t.year * 12 + t.month - 1 - int((t + pd.Timedelta(days=1)).month == t.month)
    subs = _expand(b.subscriptions, "start_date", "end_date", k_max)
    panel = subs.groupby(["account_id", "_k"]).mrr.sum(min_count=1).reset_index()
    keys = ["account_id", "_k"]
    if b.usage is not None:
        u = b.usage.assign(_k=_month_index(b.usage.period)).pivot_table(index=keys, columns="metric", values="value", aggfunc="sum")
        panel = panel.merge(u.reset_index(), on=keys, how="left")
    me = lambda d: pd.Series(_month_end(d._k.to_numpy()), index=d.index)
    if b.tickets is not None:
        tk = _expand(b.tickets[b.tickets.priority.isin(["P1", "P2"])], "opened_at", "closed_at", k_max)
        tk["age"] = (me(tk) - tk.opened_at).dt.days
        agg = tk.groupby(keys).agg(open_p1p2=("ticket_id", "size"), oldest_p1p2_days=("age", "max")).reset_index()
        panel = panel.merge(agg, on=keys, how="left")
        panel["open_p1p2"] = panel.open_p1p2.fillna(0).astype(int)
    if b.invoices is not None:
        iv = b.invoices.assign(_due=b.invoices.due_at + pd.Timedelta(days=1))
        iv = _expand(iv, "_due", "paid_at", k_max)
        iv["overdue"] = (me(iv) - iv.due_at).dt.days
        agg = iv.groupby(keys).overdue.max().rename("days_overdue").reset_index()
        panel = panel.merge(agg, on=keys, how="left")
        panel["days_overdue"] = panel.days_overdue.fillna(0).astype(int)
    if b.surveys is not None:
        for kind in ("nps", "csat"):
            sv = b.surveys[b.surveys.kind == kind].assign(_k=lambda d: _month_index(d.answered_at))
            last = sv.sort_values(["answered_at", "response_id"], kind="stable").groupby(keys).score.last().rename(kind).reset_index()
            panel = pd.merge_asof(panel.sort_values("_k"), last.sort_values("_k"), on="_k", by="account_id", direction="backward")
    if b.contacts is not None:
        sp = _expand(b.contacts[b.contacts.role == "sponsor"], "started_at", "left_at", k_max)
        agg = sp.groupby(keys).size().rename("sponsors").reset_index()
        panel = panel.merge(agg, on=keys, how="left")
        panel["sponsor_present"] = panel.pop("sponsors").fillna(0) > 0
    if b.activities is not None:
        ac = b.activities.assign(_k=lambda d: _month_index(d["at"])).groupby(keys).size().rename("touches").reset_index()
        panel = panel.merge(ac, on=keys, how="left")
        panel["touches"] = panel.touches.fillna(0).astype(int)
    spells = customer_spells(b.subscriptions)
    churn = spells[spells.end.notna()].assign(_k=lambda d: _month_index(d.end)).assign(_churn=True)[keys + ["_churn"]]
    churn = churn.assign(_k=churn._k - 1).drop_duplicates(keys)   # churn date in month k+1 -> flag on month k
    panel = panel.merge(churn, on=keys, how="left")
    nxt = panel._k + 1 <= k_max
    panel["churn_next_month"] = pd.array(np.where(nxt, panel._churn.notna(), None).tolist(), dtype="boolean")
    panel.insert(1, "month", _month_end(panel._k.to_numpy()))
    return panel.drop(columns=["_k", "_churn"]).sort_values(["account_id", "month"]).reset_index(drop=True)
