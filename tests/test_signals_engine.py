"""The risk rules as ibis expressions over a grid of snapshot days (csbench.signals) give what the per-snapshot pandas
rules they replaced gave: the same flags, numbers and reasons, on the hand-built tiny book and on the sample book, at
month ends and mid-month, with default and other thresholds; a lazy Parquet book gives what the pandas Book gives;
a rule written only in pandas (`check`, no `expr`) still runs, snapshot by snapshot.

`Ref*` / `ref_*` below is the pandas implementation as it was before the rules moved to the engine, kept here as the
reference. One deliberate change: where a rule picks the latest row (the latest NPS or CSAT, the last key user to
unsubscribe), ties on the same day are broken by the row id (the later id wins), as the engine does; the old code
took whatever an unstable sort left last (94 same-day survey ties in the sample book).

DuckDB against Spark: `SPARK_LOCAL_IP=127.0.0.1 .venv/bin/pytest -m spark tests/test_signals_engine.py` (minutes)."""
import importlib.util
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
import pandas as pd
import pytest

from csbench.book import Book, BookMeta, as_timestamp
from csbench.frames import DAYS_PER_MONTH, customer_spells
from csbench.schema import BookError
from csbench.signals import (DEFAULT_RULES, FirstYear, LowAdoption, NpsDetractor, OpenCriticalTicket, PaymentOverdue,
                             RenewalDue, RiskRule, SponsorLost, UsageDrop, _BASE, _book_at, _month_index, _outcomes, _tiny_tables,
                             check_rules, rule_performance, signal_history, watch_list)

pytestmark = pytest.mark.filterwarnings("error:Mismatched null-like values")   # None where pandas had NaN is a difference

ALL = DEFAULT_RULES + (LowAdoption(), NpsDetractor())
ODD = (UsageDrop(drop=0.3, months=3, survey_months=12, low_nps=7, low_csat=3), OpenCriticalTicket(days=3, priorities=("P1", "P2", "P3")),
       PaymentOverdue(days=10), SponsorLost(months=12, key_roles=("champion",)), RenewalDue(months=6), FirstYear(months=6),
       LowAdoption(share=0.6, metric="logins"), NpsDetractor(score=8, months=12))
EDGE = (UsageDrop(metric="logins", drop=0.05, months=1, survey_months=1), OpenCriticalTicket(priorities=()), PaymentOverdue(days=0),
        SponsorLost(key_roles=()), RenewalDue(months=0), FirstYear(months=0), LowAdoption(share=1.0), NpsDetractor(score=0, months=1))
RULE_SETS = {"all": ALL, "odd": ODD, "edge": EDGE}


# ---- the reference: the pandas rules as they were, one snapshot at a time -------------------------------------------

def _ago(t, months): return t - pd.DateOffset(months=int(months))


class RefSnapshot:
    "The book cut at the end of day `at` and the accounts paying then, in pandas."
    def __init__(self, book, at, pivots=None):
        self.at = as_timestamp(at)
        self.book = _book_at(book, self.at)
        self.currency = book.meta.currency
        self.last_month = int(_month_index(self.at + pd.Timedelta(days=1))[0]) - 1
        self._source, self._pivots = book, ({} if pivots is None else pivots)

    @cached_property
    def accounts(self):
        t, s = self.at, self.book.subscriptions
        run = s[(s.start_date <= t) & (s.end_date.isna() | (s.end_date > t))]
        out = pd.DataFrame({"mrr": run.groupby("account_id").mrr.sum(min_count=1)})
        out.index.name = "account_id"
        out["arr"] = 12 * out.mrr
        out["renewal_date"] = run[run.term_months > 1].groupby("account_id").end_date.min()
        out["first_start"] = s.groupby("account_id").start_date.min()
        out["tenure_months"] = (t - out.first_start).dt.days / DAYS_PER_MONTH
        acc = self.book.accounts.set_index("account_id")
        for c in ("account_name", "csm_id", "touch_model", "industry", "channel"):
            out[c] = acc[c].reindex(out.index) if c in acc else None
        return out

    def usage(self, metric):
        if metric not in self._pivots:
            u = self._source.usage[self._source.usage.metric == metric]
            self._pivots[metric] = u.assign(_k=_month_index(u.period)).pivot_table(index="account_id", columns="_k", values="value", aggfunc="sum")
        p = self._pivots[metric]
        return p.loc[:, p.columns <= self.last_month]


def ref_frame(snap, fired, **details):
    ids = snap.accounts.index
    out = pd.DataFrame({k: pd.Series(v, index=ids) if np.ndim(v) == 0 else pd.Series(v).reindex(ids) for k, v in details.items()}, index=ids)
    out.insert(0, "fired", pd.Series(fired).astype(bool).reindex(ids, fill_value=False) if not np.isscalar(fired) else bool(fired))
    return out


def ref_usage_drop(self, snap):
    u = snap.usage(self.metric)
    k = snap.last_month
    now = u[k] if k in u else pd.Series(dtype=float)
    before = u[k - self.months] if k - self.months in u else pd.Series(dtype=float)
    now, before = now.reindex(snap.accounts.index), before.reindex(snap.accounts.index)
    down = (before > 0) & (now <= (1 - self.drop) * before)
    sv = snap.book.require("surveys")
    recent = sv[sv.answered_at > _ago(snap.at, self.survey_months)].sort_values(["answered_at", "response_id"], kind="stable")
    last = {kind: recent[recent.kind == kind].groupby("account_id").score.last() for kind in ("nps", "csat")}
    nps, csat = last["nps"].reindex(now.index), last["csat"].reindex(now.index)
    quiet = ~now.index.isin(recent.account_id)
    low = (nps <= self.low_nps) | (csat <= self.low_csat)
    return ref_frame(snap, down & (quiet | low), usage_before=before, usage_now=now, usage_change=now / before - 1,
                     no_recent_survey=pd.Series(quiet, index=now.index), latest_nps=nps, latest_csat=csat)


def ref_critical_ticket(self, snap):
    tk = snap.book.require("tickets")
    open_ = tk[tk.priority.isin(self.priorities) & tk.closed_at.isna()]
    open_ = open_.assign(age=(snap.at - open_.opened_at).dt.days)
    old = open_[open_.age >= self.days]
    g = old.groupby("account_id")
    return ref_frame(snap, g.size() > 0, open_tickets=g.size(), oldest_days=g.age.max(), worst_priority=g.priority.min())


def ref_payment_overdue(self, snap):
    iv = snap.book.require("invoices")
    unpaid = iv[iv.paid_at.isna() & (iv.due_at < snap.at)]
    unpaid = unpaid.assign(overdue=(snap.at - unpaid.due_at).dt.days)
    late = unpaid[unpaid.overdue >= self.days]
    g = late.groupby("account_id")
    return ref_frame(snap, g.size() > 0, days_overdue=g.overdue.max(), amount_overdue=g.amount.sum())


def ref_sponsor_lost(self, snap):
    c = snap.book.require("contacts")
    since = _ago(snap.at, self.months)
    left = c[(c.role == "sponsor") & c.left_at.notna() & (c.left_at > since)].sort_values("left_at")
    uns = c[c.role.isin(self.key_roles) & c.unsubscribed_at.notna() & (c.unsubscribed_at > since)].sort_values(
        ["unsubscribed_at", "contact_id"], kind="stable")
    gl, gu = left.groupby("account_id"), uns.groupby("account_id")
    sponsor_left_at, key_user_unsubscribed_at = gl.left_at.last(), gu.unsubscribed_at.last()
    ids = snap.accounts.index
    fired = ids.isin(sponsor_left_at.index) | ids.isin(key_user_unsubscribed_at.index)
    return ref_frame(snap, pd.Series(fired, index=ids), sponsor_left_at=sponsor_left_at,
                     key_user_unsubscribed_at=key_user_unsubscribed_at, key_user_role=gu.role.last())


def ref_renewal_due(self, snap):
    rd = snap.accounts.renewal_date
    due = rd.notna() & (rd <= snap.at + pd.DateOffset(months=self.months))
    return ref_frame(snap, due, renewal_date=rd, days_to_renewal=(rd - snap.at).dt.days)


def ref_first_year(self, snap):
    fs = snap.accounts.first_start
    return ref_frame(snap, fs > _ago(snap.at, self.months), first_start=fs)


def ref_low_adoption(self, snap):
    k = snap.last_month
    u, s = snap.usage(self.metric), snap.usage(self.seats)
    now = (u[k] if k in u else pd.Series(dtype=float)).reindex(snap.accounts.index)
    seats = (s[k] if k in s else pd.Series(dtype=float)).reindex(snap.accounts.index)
    return ref_frame(snap, (seats > 0) & (now < self.share * seats), users=now, seats=seats, adoption=now / seats)


def ref_nps_detractor(self, snap):
    sv = snap.book.require("surveys")
    low = sv[(sv.kind == "nps") & (sv.score <= self.score) & (sv.answered_at > _ago(snap.at, self.months))].sort_values(
        ["answered_at", "response_id"], kind="stable")
    g = low.groupby("account_id")
    return ref_frame(snap, g.size() > 0, detractor_score=g.score.last(), answered_at=g.answered_at.last())


REF = {UsageDrop: ref_usage_drop, OpenCriticalTicket: ref_critical_ticket, PaymentOverdue: ref_payment_overdue,
       SponsorLost: ref_sponsor_lost, RenewalDue: ref_renewal_due, FirstYear: ref_first_year, LowAdoption: ref_low_adoption,
       NpsDetractor: ref_nps_detractor}


def ref_check(rule, snap): return REF[type(rule)](rule, snap)


def ref_evaluate(snap, rules):
    base = snap.accounts.reset_index()[_BASE].set_index("account_id")
    details = {r.key: ref_check(r, snap) for r in rules}
    for k, d in details.items(): base[k] = d.fired.reindex(base.index).fillna(False).astype(bool)
    base["n_rules"] = base[list(details)].sum(axis=1).astype(int)
    return base, details


def ref_reasons(flags, details, rules, lang, currency):
    keys, texts = {}, {}
    sep = "／" if lang == "ja" else "; "
    for a in flags.index[flags.n_rules > 0]:
        hit = [r for r in rules if flags.at[a, r.key]]
        keys[a] = tuple(r.key for r in hit)
        texts[a] = sep.join(r.reason(details[r.key].loc[a], lang=lang, currency=currency) for r in hit)
    return (pd.Series([keys.get(a, ()) for a in flags.index], index=flags.index, dtype=object),
            pd.Series([texts.get(a, "") for a in flags.index], index=flags.index, dtype=object))


def ref_check_rules(book, at, rules, lang="en"):
    snap = RefSnapshot(book, at)
    flags, details = ref_evaluate(snap, rules)
    flags["rules"], flags["reasons"] = ref_reasons(flags, details, rules, lang, snap.currency)
    return flags.reset_index().assign(at=snap.at)


ref_outcomes = _outcomes   # the outcome labels did not move to the engine: the same function


HISTORY_BASE = ("snapshot", *_BASE, "annual", "renews_in_horizon", "n_rules", "churned", "churn_date", "cause", "horizon_months")


def ref_signal_history(book, as_of, rules, horizon_months=3, lookback_months=24):
    t = as_timestamp(as_of)
    known = _book_at(book, t)
    first = max(known.subscriptions.start_date.min(), t - pd.DateOffset(months=lookback_months))
    snaps = [s for s in pd.date_range(first + pd.offsets.MonthEnd(0), t, freq="ME") if s + pd.DateOffset(months=horizon_months) <= t]
    pivots, parts = {}, []
    for s in snaps:
        snap = RefSnapshot(known, s, pivots)
        flags, _ = ref_evaluate(snap, rules)
        flags["annual"] = flags.renewal_date.notna()
        flags["renews_in_horizon"] = flags.renewal_date <= snap.at + pd.DateOffset(months=horizon_months)
        parts.append(flags.reset_index().assign(snapshot=snap.at, horizon_months=horizon_months))
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True)
    frame = ref_outcomes(frame, customer_spells(known.subscriptions), horizon_months)
    return frame[[c for c in HISTORY_BASE if c in frame] + [r.key for r in rules]]


def assert_same(new, ref):
    "Exact for ids, flags, counts and dates; floats to 1e-12 relative."
    pd.testing.assert_frame_equal(new, ref, check_exact=False, rtol=1e-12, atol=0)


# ---- fixtures -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny() -> Book:
    return Book(BookMeta("tiny", "JPY"), **_tiny_tables())


@pytest.fixture(scope="module")
def sample_history(sample_book):
    return signal_history(sample_book, as_of="2025-12-31", rules=ALL, lookback_months=24)


@pytest.fixture(scope="module")
def ref_sample_history(sample_book):
    return ref_signal_history(sample_book, "2025-12-31", ALL)


@pytest.fixture(scope="module")
def lazy_sample(sample_book, tmp_path_factory):
    from csbench.engine import scan_book
    return scan_book(sample_book.write(tmp_path_factory.mktemp("sample") / "book", format="parquet"))


# ---- the engine gives what the pandas rules gave ---------------------------------------------------------------------

@pytest.mark.parametrize("rules", RULE_SETS, ids=str)
@pytest.mark.parametrize("day", ["2025-06-30", "2025-06-15", "2025-05-31", "2025-07-04", "2024-12-31", "2023-01-09"])
def test_check_rules_tiny(tiny, day, rules):
    assert_same(check_rules(tiny, at=day, rules=RULE_SETS[rules]), ref_check_rules(tiny, day, RULE_SETS[rules]))


@pytest.mark.parametrize("day, rules, lang", [("2025-12-31", "all", "en"), ("2025-11-15", "all", "ja"), ("2025-06-30", "odd", "en"),
                                              ("2024-02-29", "odd", "ja"), ("2023-07-01", "all", "en"), ("2025-03-17", "edge", "en")])
def test_check_rules_sample(sample_book, day, rules, lang):
    new = check_rules(sample_book, at=day, rules=RULE_SETS[rules], lang=lang)
    assert_same(new, ref_check_rules(sample_book, day, RULE_SETS[rules], lang))
    if rules != "edge" and day >= "2024": assert new[[r.key for r in RULE_SETS[rules]]].any().all()   # every rule trips somewhere


def test_each_rule_check(sample_book, tiny):
    "check(snapshot) on every rule: the flag and every number behind it, for all paying accounts."
    from csbench.signals import Snapshot
    for book, day in ((sample_book, "2025-11-15"), (tiny, "2025-06-30")):
        snap, ref = Snapshot(book, day), RefSnapshot(book, day)
        assert_same(snap.accounts, ref.accounts)
        for r in ALL: assert_same(r.check(snap), ref_check(r, ref))


@pytest.mark.parametrize("rules", ["odd", "edge"])
def test_each_rule_numbers(sample_book, tiny, rules):
    "The numbers behind each flag with other thresholds, every rule in one query (what check_rules reads its reasons from)."
    from csbench.signals import _evaluate
    for book, days in ((sample_book, ["2025-12-31", "2024-02-29"]), (tiny, ["2025-06-30", "2025-06-15", "2025-07-04"])):
        _, details = _evaluate(book, days, RULE_SETS[rules])
        for day in days:
            ref = RefSnapshot(book, day)
            for r in RULE_SETS[rules]:
                d = details[r.key]
                assert_same(d[d["at"] == day].drop(columns="at").set_index("account_id"), ref_check(r, ref))


def test_signal_history_sample(sample_history, ref_sample_history):
    assert_same(sample_history, ref_sample_history)
    assert sample_history.snapshot.nunique() == 22 and sample_history[[r.key for r in ALL]].any().all()


def test_signal_history_other_thresholds_mid_month(sample_book):
    new = signal_history(sample_book, as_of="2025-10-15", rules=ODD, horizon_months=2, lookback_months=30)
    assert_same(new, ref_signal_history(sample_book, "2025-10-15", ODD, horizon_months=2, lookback_months=30))


def test_signal_history_tiny(tiny):
    assert_same(signal_history(tiny, as_of="2025-12-31", rules=ALL, lookback_months=24), ref_signal_history(tiny, "2025-12-31", ALL))


def test_performance_and_watch_list(sample_book, sample_history, ref_sample_history):
    ref_hist = ref_sample_history
    perf = rule_performance(sample_book, as_of="2025-12-31", rules=ALL, history=sample_history)
    assert_same(perf, rule_performance(sample_book, as_of="2025-12-31", rules=ALL, history=ref_hist))
    wl = watch_list(sample_book, as_of="2025-12-31", rules=ALL, history=sample_history, flagged_only=False)
    ref = ref_check_rules(sample_book, "2025-12-31", ALL).set_index("account_id").loc[wl.account_id]
    assert_same(wl.set_index("account_id")[["arr", "renewal_date", "n_rules", "rules", "reasons", *(r.key for r in ALL)]],
                ref[["arr", "renewal_date", "n_rules", "rules", "reasons", *(r.key for r in ALL)]])


def test_extra_columns_and_empty_tables(tiny):
    "Extra account columns of other dtypes, and a table with no rows, do not disturb the query."
    acc = tiny.accounts.assign(segment=pd.Categorical(["a", "b", "a", "b", "a"]), since=pd.Timestamp("2020-01-01"), score=[1, 2, 3, 4, 5])
    book = tiny.replace(accounts=acc, tickets=tiny.tickets.iloc[:0])
    assert_same(check_rules(book, at="2025-06-30", rules=ALL), ref_check_rules(book, "2025-06-30", ALL))
    assert not check_rules(book, at="2025-06-30", rules=ALL).critical_ticket.any()


# ---- a lazy Parquet book gives what the pandas Book gives --------------------------------------------------------------

def test_lazy_book_history(sample_book, lazy_sample, sample_history):
    assert_same(signal_history(lazy_sample, as_of="2025-12-31", rules=ALL, lookback_months=24), sample_history)


def test_lazy_book_check_rules(sample_book, lazy_sample):
    assert_same(check_rules(lazy_sample, at="2025-11-15", rules=ALL), check_rules(sample_book, at="2025-11-15", rules=ALL))


@pytest.mark.slow
def test_lazy_book_watch_list(sample_book, lazy_sample, sample_history):
    assert_same(watch_list(lazy_sample, as_of="2025-12-31", rules=ALL, history=sample_history),
                watch_list(sample_book, as_of="2025-12-31", rules=ALL, history=sample_history))


# ---- a rule written only in pandas -----------------------------------------------------------------------------------

def _in_pandas(rule):
    "The same rule, its `check` written in pandas (the reference code): it runs snapshot by snapshot, not in the engine."
    cls = type(f"PandasOnly{type(rule).__name__}", (type(rule),), {"check": lambda self, snap: ref_check(rule, snap)})
    return dataclass(frozen=True)(cls)(**{f.name: getattr(rule, f.name) for f in fields(rule)})


def test_check_only_rules_run_snapshot_by_snapshot(sample_book):
    "Every other rule written in pandas (`check` only): check_rules and signal_history give what the engine gives."
    from csbench.signals import _in_engine
    mixed = tuple(_in_pandas(r) if i % 2 else r for i, r in enumerate(ALL))
    assert [_in_engine(r) for r in mixed] == [i % 2 == 0 for i in range(len(ALL))]
    assert [r.key for r in mixed] == [r.key for r in ALL]
    assert_same(check_rules(sample_book, at="2025-11-15", rules=mixed), check_rules(sample_book, at="2025-11-15", rules=ALL))
    assert_same(signal_history(sample_book, as_of="2025-12-31", rules=mixed, lookback_months=6),
                signal_history(sample_book, as_of="2025-12-31", rules=ALL, lookback_months=6))


def test_check_only_rule_needs_a_pandas_book(lazy_sample):
    with pytest.raises(BookError, match="define only check"):
        check_rules(lazy_sample, at="2025-12-31", rules=[_in_pandas(RenewalDue()), FirstYear()])


def test_rule_with_neither_expr_nor_check(tiny):
    @dataclass(frozen=True)
    class Empty(RiskRule):
        name = "empty"
    with pytest.raises(NotImplementedError, match="neither expr"):
        check_rules(tiny, at="2025-06-30", rules=[Empty()])


def test_bad_expressions_are_refused(tiny):
    @dataclass(frozen=True)
    class NoFlag(RiskRule):
        name = "no_flag"
        def expr(self, tables, grid): return tables["paying"].select("at", "account_id", "arr")

    @dataclass(frozen=True)
    class Twice(RiskRule):
        name = "twice"
        def expr(self, tables, grid):
            p = tables["paying"].select("at", "account_id", fired=True)
            return p.union(p, distinct=False)
    with pytest.raises(BookError, match="no_flag.*must return the columns at, account_id, fired; fired missing"):
        check_rules(tiny, at="2025-06-30", rules=[NoFlag()])
    with pytest.raises(BookError, match="more than one row"):
        check_rules(tiny, at="2025-06-30", rules=[Twice()])


# ---- DuckDB and Spark ---------------------------------------------------------------------------------------------

@pytest.mark.spark
def test_spark_gives_what_duckdb_gives(sample_book, sample_history):
    if importlib.util.find_spec("pyspark") is None: pytest.skip("pyspark is not installed: `make test-spark` installs the spark extra")
    from csbench.engine import connect
    spark = connect("spark")
    try:
        assert_same(signal_history(sample_book, as_of="2025-12-31", rules=ALL, lookback_months=24, con=spark), sample_history)
        day = "2025-11-15"
        new, ref = check_rules(sample_book, at=day, rules=ALL, con=spark), check_rules(sample_book, at=day, rules=ALL)
        assert_same(new, ref)
    finally:
        spark._session.stop()
