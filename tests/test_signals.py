"""Risk signals beyond the notebook: no leakage from after as_of (property), bad inputs, and the weekly report end to end."""
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from csbench.book import Book, BookMeta
from csbench.schema import BookError, MissingTableError
from csbench.signals import (DEFAULT_RULES, FirstYear, OpenCriticalTicket, PaymentOverdue, RenewalDue, SponsorLost,
                             UsageDrop, applicable_rules, check_rules, deals, lookalike_story, lookalikes,
                             rule_performance, signal_history, watch_list, watch_list_backtest, _tiny_tables)

ROOT = Path(__file__).resolve().parents[1]
CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def tiny() -> Book:
    return Book(BookMeta("tiny", "JPY"), **_tiny_tables())


@pytest.fixture(scope="module")
def small_history(small_book):
    return signal_history(small_book, as_of="2024-12-31", lookback_months=12)


# ---- no leakage -------------------------------------------------------------------------------------------------

@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day=st.dates(min_value=pd.Timestamp("2023-04-01").date(), max_value=pd.Timestamp("2024-12-31").date()))
def test_rules_see_nothing_after_the_day(small_book, day):
    "Checking the rules on the whole book or on the book cut at the day gives the same flags and reasons."
    full = check_rules(small_book, at=day)
    cut = check_rules(small_book.truncate(day), at=day)
    pd.testing.assert_frame_equal(full.reset_index(drop=True), cut.reset_index(drop=True))


def test_future_rows_do_not_move_the_watch_list(small_book, small_history):
    "Adding rows dated after as_of (a late payment, a new ticket) changes neither the flags nor the probabilities."
    t = pd.Timestamp("2024-09-30")
    base = watch_list(small_book, as_of=t, history=small_history, flagged_only=False)
    tk = small_book.tickets
    extra = pd.DataFrame({"ticket_id": ["T-future"], "account_id": [base.account_id.iloc[0]], "opened_at": [t + pd.Timedelta(days=1)],
                          "closed_at": [pd.NaT], "priority": ["P1"], "category": ["bug"]})
    later = small_book.replace(tickets=pd.concat([tk, extra], ignore_index=True))
    again = watch_list(later, as_of=t, history=small_history, flagged_only=False)
    pd.testing.assert_frame_equal(base, again)


def test_history_rows_have_known_outcomes(small_history):
    assert (small_history.snapshot + pd.DateOffset(months=3) <= pd.Timestamp("2024-12-31")).all()
    assert small_history.churned.dtype == bool and small_history.churn_date.notna().eq(small_history.churned).all()


# ---- bad inputs -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("table, rule", [("usage", UsageDrop()), ("surveys", UsageDrop()), ("tickets", OpenCriticalTicket()),
                                         ("invoices", PaymentOverdue()), ("contacts", SponsorLost())])
def test_missing_table_names_the_rule(tiny, table, rule):
    book = Book(tiny.meta, **{k: v for k, v in tiny.tables.items() if k != table})
    with pytest.raises(MissingTableError, match=rf"has no {table} table.*{rule.key} reads"):
        watch_list(book, as_of="2025-06-30", churn_probability=pd.Series(dtype=float))
    assert rule not in applicable_rules(book)


def test_minimal_book_runs_the_moment_rules(tiny):
    "Accounts and subscriptions alone feed RenewalDue and FirstYear."
    book = Book(tiny.meta, tiny.accounts, tiny.subscriptions)
    assert [r.key for r in applicable_rules(book)] == ["renewal_due", "first_year"]
    wl = watch_list(book, as_of="2025-06-30", rules=applicable_rules(book), lookback_months=6)
    assert set(wl.account_id) == {"A2", "A4"} and (wl.p_source == "base_rate").all()


@pytest.mark.parametrize("kw, message", [
    (dict(as_of="someday"), "as_of must be a date"),
    (dict(as_of="2025-06-30", rules=[]), "at least one RiskRule"),
    (dict(as_of="2025-06-30", rules=[UsageDrop(), "renewal"]), "must be RiskRule objects"),
    (dict(as_of="2025-06-30", churn_probability=pd.DataFrame({"id": ["A1"], "p": [0.1]})), "account_id and p_churn"),
    (dict(as_of="2025-06-30", churn_probability=[0.1, 0.2]), "must be a Series"),
    (dict(as_of="2025-06-30", churn_probability=pd.Series({"A1": -0.1})), "between 0 and 1"),
    (dict(as_of="2025-06-30", lang="fr"), "lang must be"),
    (dict(as_of="2025-06-30", history=pd.DataFrame({"x": [1]})), "output of signal_history"),
])
def test_watch_list_bad_arguments(tiny, kw, message):
    with pytest.raises((BookError, ValueError), match=message): watch_list(tiny, **kw)


def test_history_with_other_rules_or_horizon_is_refused(small_book, small_history):
    with pytest.raises(BookError, match="no column for rule"):
        rule_performance(small_book, as_of="2024-12-31", rules=[RenewalDue(months=6)], history=small_history)
    with pytest.raises(BookError, match="horizon_months"):
        watch_list(small_book, as_of="2024-12-31", history=small_history, horizon_months=6)


def test_history_needs_time(tiny):
    with pytest.raises(BookError, match="outcome known"):
        signal_history(tiny, as_of="2023-02-15", lookback_months=12)


def test_backtest_needs_the_outcome(small_book, small_history):
    with pytest.raises(BookError, match="not in the book yet"):
        watch_list_backtest(small_book, as_of="2024-11-30", history=small_history)


def test_lookalikes_bad_inputs(tiny):
    with pytest.raises(BookError, match="No account 'Z9'"): lookalikes(tiny, "Z9", as_of="2025-06-30")
    with pytest.raises(BookError, match="not columns of the deals"): lookalikes(tiny, "A1", as_of="2025-06-30", keys=("colour",))
    with pytest.raises(BookError, match="account_id, at, score"):
        deals(tiny, as_of="2025-06-30", health=pd.DataFrame({"account_id": ["A1"], "value": [3]}))


# ---- behaviour on a synthetic book ------------------------------------------------------------------------------

def test_precision_table_shape_and_ranges(small_book, small_history):
    perf = rule_performance(small_book, as_of="2024-12-31", history=small_history)
    assert list(perf.index) == [r.key for r in DEFAULT_RULES] + ["any_rule"]
    ok = perf.dropna(subset=["precision"])
    assert ((ok.precision_lower <= ok.precision) & (ok.precision <= ok.precision_upper)).all()
    assert (perf.caught <= perf.churn_events).all() and perf.loc["any_rule", "recall"] >= perf.recall.drop("any_rule").max()


def test_stories_in_both_languages(small_book):
    d = deals(small_book, as_of="2024-12-31")
    wl = watch_list(small_book, as_of="2024-12-31", churn_probability=pd.Series(0.1, index=small_book.accounts.account_id))
    who = wl.account_id.iloc[0]
    en = lookalike_story(small_book, who, as_of="2024-12-31", deals=d)
    ja = lookalike_story(small_book, who, as_of="2024-12-31", deals=d, lang="ja")
    assert "past deal" in en or "No past deal" in en
    assert CJK.search(ja) and not CJK.search(en)


# ---- the weekly report end to end -------------------------------------------------------------------------------

def test_weekly_report_on_a_small_book(small_book, tmp_path):
    "reports/weekly.yaml with a small book: one section, the watch list, with its headline numbers, in English and Japanese."
    from csbench.report import RunConfig, run_report
    data = small_book.write(tmp_path / "book")
    cfg = replace(RunConfig.from_yaml(ROOT / "reports" / "weekly.yaml"), data=data, output=tmp_path / "out")
    assert cfg.templates == ("50_watch_list",)
    res = run_report(cfg, period="2024-12", progress=False)
    assert res.ok and [s.name for s in res.sections] == ["50_watch_list"]
    keys = [h["key"] for h in res.sections[0].headlines]
    assert keys == ["watch_list_accounts", "arr_at_risk"]
    ja = run_report(cfg, period="2024-12", lang="ja", progress=False)
    page = (ja.path / "50_watch_list.html").read_text(encoding="utf-8")
    assert "要注意顧客リスト" in page and "理由" in page
