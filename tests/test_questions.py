"""The business questions beyond the notebook: properties of every answer, bad inputs, the maturity YAML, the report template."""
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, HealthCheck, strategies as st

from csbench.book import Book, BookMeta
from csbench.schema import BookError, MissingTableError
from csbench.questions import (Answer, EXAMPLE_MATURITY_ANSWERS, churn_by_industry, contract_size_by_tenure, csm_activity,
                               discount_change_at_renewal, expansion_share, lifecycle_funnel, maturity_assessment,
                               maturity_questionnaire, question_label, retention_by_product, time_to_value_effect,
                               _tiny_question_tables)
from csbench.revenue import mrr_movements, retention_rates

ROOT = Path(__file__).resolve().parents[1]
CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
QUESTIONS = [expansion_share, churn_by_industry, retention_by_product, discount_change_at_renewal, contract_size_by_tenure,
             lifecycle_funnel, time_to_value_effect, csm_activity]


@pytest.fixture(scope="module")
def tq() -> Book:
    return Book(BookMeta("tiny questions", "JPY"), **_tiny_question_tables())


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day=st.dates(min_value=pd.Timestamp("2024-03-31").date(), max_value=pd.Timestamp("2024-12-31").date()))
def test_every_answer_is_well_formed(small_book, day):
    "Any as_of: every answer has n >= 0, rates in [0, 1] inside their interval, and words in English and Japanese."
    for q in QUESTIONS:
        a = q(small_book, as_of=day)
        assert isinstance(a, Answer) and a.n >= 0, q.__name__
        assert a.text("en") and CJK.search(a.text("ja")) and not CJK.search(a.text("en")), q.__name__
        t = a.table
        if {"rate", "lower", "upper"} <= set(t.columns):
            ok = t.dropna(subset=["rate"])
            assert ((ok.rate >= 0) & (ok.rate <= 1)).all(), q.__name__
            assert ((ok.lower <= ok.rate + 1e-12) & (ok.rate <= ok.upper + 1e-12)).all(), q.__name__
        if q not in (csm_activity, contract_size_by_tenure) and not (np.isnan(a.lower) or np.isnan(a.upper)):   # not bootstrap
            assert a.lower - 1e-9 <= a.value <= a.upper + 1e-9, q.__name__


def test_answers_see_nothing_after_as_of(small_book):
    "The same answers from the whole book and from the book cut at as_of."
    t = "2024-06-30"
    cut = small_book.truncate(t)
    for q in QUESTIONS:
        a, b = q(small_book, as_of=t), q(cut, as_of=t)
        assert a.words == b.words, q.__name__
        pd.testing.assert_frame_equal(a.table, b.table, obj=q.__name__)


@pytest.mark.parametrize("question, tables", [(lifecycle_funnel, "milestones"), (time_to_value_effect, "milestones"),
                                              (csm_activity, "activities, csms")])
def test_missing_tables(tq, question, tables):
    book = Book(tq.meta, tq.accounts, tq.subscriptions)
    with pytest.raises(MissingTableError, match=f"needs the table\\(s\\) {tables}"): question(book, as_of="2025-12-31")


@pytest.mark.parametrize("question", [expansion_share, churn_by_industry, retention_by_product, discount_change_at_renewal,
                                      contract_size_by_tenure])
def test_questions_on_accounts_and_subscriptions_only(tq, question):
    "Questions that need no other table answer on a minimal book."
    a = question(Book(tq.meta, tq.accounts, tq.subscriptions), as_of="2025-12-31")
    assert a.n > 0


@pytest.mark.parametrize("kw, message", [(dict(as_of="soon"), "as_of must be a date"), (dict(as_of="2025-12-31", months=0), "at least 1"),
                                         (dict(as_of="2025-12-31", by="colour"), "by must be one of")])
def test_bad_arguments(tq, kw, message):
    with pytest.raises(BookError, match=message): expansion_share(tq, **kw)


def test_not_a_book():
    with pytest.raises(BookError, match="need a csbench Book"): expansion_share(pd.DataFrame(), as_of="2025-12-31")


def test_small_industries_are_flagged(tq):
    a = churn_by_industry(tq, as_of="2025-12-31", min_accounts=3)
    assert a.subject == "finance" and a.table.loc["retail", "small"] and "not ranked" in a.text()


# ---- one definition of churn: the revenue chapter's ---------------------------------------------------------------

def test_churn_and_return_is_not_churn():
    "Q9 left retail in April and came back paying more in August: expanded, not churned, in both questions."
    tr = Book(BookMeta("tiny, with a return", "JPY"), **_tiny_question_tables(returning=True))
    e = expansion_share(tr, as_of="2025-12-31")
    assert e.table.loc["all", ["accounts", "expanded", "flat", "contracted", "churned"]].tolist() == [6, 2, 2, 1, 1]
    assert "1 left during the window and came back" in e.text() and "再契約した1社" in e.text("ja")
    c = churn_by_industry(tr, as_of="2025-12-31", min_accounts=1)
    assert c.table.loc["retail", ["accounts", "churned"]].tolist() == [3, 1]
    logo = retention_rates(mrr_movements(tr, as_of="2025-12-31"), definition="capped-12m").logo_churn.iloc[-1]
    assert logo == pytest.approx(1 / 6) == e.table.loc["all", "churned"] / e.n


def test_sample_churn_matches_the_revenue_page(sample_book):
    "On the sample book, 2025: the revenue page's 178 of 969 (18.4 %), though 4 accounts churned and came back in the year."
    e = expansion_share(sample_book, as_of="2025-12-31")
    r = retention_rates(mrr_movements(sample_book, as_of="2025-12-31"), definition="capped-12m").iloc[-1]
    assert (e.n, int(e.table.loc["all", "churned"])) == (969, 178) and e.n == r.base_accounts
    assert 178 / 969 == pytest.approx(r.logo_churn) and "4 left during the window and came back" in e.text()


@pytest.mark.parametrize("as_of", ["2024-06-30", "2024-09-30", "2024-12-31"])
def test_churn_is_the_revenue_chapters_logo_churn(small_book, as_of):
    "The questions' cohort and churn count are the revenue chapter's capped 12-month logo churn, account for account."
    rr = retention_rates(mrr_movements(small_book, as_of=as_of), definition="capped-12m").set_index("period_end")
    r = rr.loc[pd.Timestamp(as_of)]
    e, c = expansion_share(small_book, as_of=as_of), churn_by_industry(small_book, as_of=as_of)
    assert e.n == r.base_accounts == c.table.accounts.sum()
    assert e.table.loc["all", "churned"] / e.n == pytest.approx(r.logo_churn)
    assert c.table.churned.sum() / c.table.accounts.sum() == pytest.approx(r.logo_churn)


# ---- words that say what they count --------------------------------------------------------------------------------

def test_warning_sign_arr_is_not_called_at_risk(tq):
    "The CSM answer speaks of ARR with warning signs (not the survival chapter's ARR at risk), at the headline's precision."
    a = csm_activity(tq, as_of="2025-12-31", warned=["Q1", "Q4", "Q5"])
    assert a.value == pytest.approx(0.6)
    for lang in ("en", "ja"):
        assert "60.0%" in a.text(lang) and "リスク" not in a.text(lang) + a.title(lang) + question_label("warning_arr_touched", lang)
    assert "ARR with warning signs" in a.text() and "at risk" not in a.text() + a.title()
    assert "警告サインのある顧客のARR" in a.text("ja") and "警告サイン" in question_label("warning_arr_touched", "ja")
    assert list(a.tables["coverage"].columns[:5]) == ["warned_accounts", "touched_accounts", "warned_arr", "touched_arr", "touched_arr_share"]


def test_pooled_csms_are_marked(tq):
    "Tech-touch accounts have no owner: the tech-touch CSM owns none but worked Q4; owners are not pooled."
    c = csm_activity(tq, as_of="2025-12-31").tables["by_csm"].set_index("csm_id")
    assert c[["accounts", "accounts_worked", "pooled"]].to_dict("index") == {
        "C1": {"accounts": 2, "accounts_worked": 2, "pooled": False}, "C2": {"accounts": 1, "accounts_worked": 1, "pooled": False},
        "C3": {"accounts": 0, "accounts_worked": 1, "pooled": True}}


def test_tenure_bands_in_both_languages(tq):
    t = contract_size_by_tenure(tq, as_of="2025-12-31", bands=(1, 2), min_years=5).table
    assert t.ja.tolist() == ["1年未満", "1〜2年", "2〜5年", "5年以上"] and t.en.tolist() == ["<1y", "1–2y", "2–5y", "5y+"]
    assert not CJK.search("".join(t.en)) and not re.search(r"\dy", "".join(t.ja))


# ---- maturity ----------------------------------------------------------------------------------------------------

def _dims(means: dict) -> dict:
    "A questionnaire whose dimension k has one answer per value in means[k]."
    return {"dimensions": {k: {"en": k.upper(), "ja": k, "questions": [{"id": f"{k}{i}", "answer": v} for i, v in enumerate(vs)]}
                           for k, vs in means.items()}}


@pytest.mark.parametrize("answers, en, ja", [
    ({"a": [3], "b": [3, 3], "c": [1]}, "Strongest, tied at a mean of 3.0 (level 3): A, B. Weakest: C (level 1).",
     "最も強い領域はa・b（平均3.0で同点、レベル3）、最も弱い領域はc（レベル1）です。"),
    ({"a": [4], "b": [2], "c": [2]}, "Strongest: A (level 4). Weakest, tied at a mean of 2.0 (level 2): B, C.",
     "最も強い領域はa（レベル4）、最も弱い領域はb・c（平均2.0で同点、レベル2）です。"),
    ({"a": [2], "b": [2]}, "All 2 dimensions tie at a mean of 2.0 (level 2).", "2領域すべてが平均2.0で同点です（レベル2）。"),
    ({"a": [5], "b": [None]}, "Only A was answered (level 5).", "回答があるのはa（レベル5）のみです。")])
def test_maturity_names_every_tied_dimension(answers, en, ja):
    a = maturity_assessment(_dims(answers))
    assert a.text().split(" of 5). ")[1].startswith(en) and ja in a.text("ja")



def test_maturity_template_round_trip(tmp_path):
    blank = maturity_questionnaire(tmp_path / "m.yaml")
    assert "answer: null" in blank.read_text(encoding="utf-8") and CJK.search(blank.read_text(encoding="utf-8"))
    with pytest.raises(BookError, match="no answers yet"): maturity_assessment(blank)
    filled = maturity_questionnaire(tmp_path / "f.yaml", answers=EXAMPLE_MATURITY_ANSWERS)
    a = maturity_assessment(str(filled))
    assert a.n == 18 and set(a.table.level) <= {1, 2, 3, 4, 5}


@pytest.mark.parametrize("source, message", [("nowhere.yaml", "No maturity questionnaire"), ("a: [1\nb", "not valid YAML"),
                                             ("- 1\n- 2\n", "is a mapping with 'dimensions"),
                                             ({"dimensions": {"x": {"questions": [{"id": "x1", "answer": "high"}]}}}, "x1: 'high'"),
                                             ({"dimensions": {"x": {"questions": [{"id": "x1", "answer": 2.5}]}}}, "x1: 2.5"),
                                             ({"dimensions": {"x": {"questions": [{"id": "x1", "answer": True}]}}}, "x1: True")])
def test_maturity_bad_questionnaires(source, message):
    with pytest.raises(BookError, match=re.escape(message)): maturity_assessment(source)


# ---- the report template ----------------------------------------------------------------------------------------

def test_business_questions_template_on_a_small_book(small_book, tmp_path):
    "The template runs on another book, in Japanese, and records its headlines; a book without milestones says so."
    from csbench.report import RunConfig, run_report
    data = small_book.write(tmp_path / "book")
    cfg = RunConfig(name="q", data=data, period="2024Q4", lang="ja", templates=("51_business_questions",),
                    templates_dir=ROOT / "notebooks" / "reports", output=tmp_path / "out")
    res = run_report(cfg, progress=False)
    assert res.ok
    keys = [h["key"] for h in res.sections[0].headlines]
    assert keys[:2] == ["expansion_share", "industry_churn"] and "cs_maturity" not in keys   # example answers: no headline
    touched = next(h for h in res.sections[0].headlines if h["key"] == "at_risk_arr_covered")   # the key the index compares
    assert touched["label"] == "警告サインのある顧客のARRのうち直近に接触した割合"
    page = (res.path / "51_business_questions.html").read_text(encoding="utf-8")
    assert "ビジネス上の問い" in page and "回答例" in page
    assert "リスクARR" not in page and "警告サインのある顧客のARR" in page and f"{100 * touched['value']:.1f}%" in page
    assert "観察データによる比較で、因果関係を示すものではありません" in page                         # touch-model table
    assert "1年未満" in page and "<1y" not in page and "&lt;1y" not in page                          # tenure bands
    assert "対象（十分な期間が経過）" in page and "転換率＝転換÷対象" in page                          # funnel base
    assert "記録時間の割合（対契約時間）＝CSMの活動記録に残った" in page and "担当CSMがおらず" in page                     # capacity, pooled CSM
    assert "先回り" not in page and "プロアクティブ" in page
    bare = Book(small_book.meta, small_book.accounts, small_book.subscriptions).write(tmp_path / "bare")
    res = run_report(replace(cfg, data=bare, lang="en", output=tmp_path / "out2"), progress=False)
    page = (res.path / "51_business_questions.html").read_text(encoding="utf-8")
    assert res.ok and "Not answered: the book has no milestones table" in page
    assert "Observational, not causal" in page and "Strongest, tied at a mean of 3.0" in page
