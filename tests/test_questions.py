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
                               maturity_questionnaire, retention_by_product, time_to_value_effect, _tiny_question_tables)

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


# ---- maturity ----------------------------------------------------------------------------------------------------

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
    page = (res.path / "51_business_questions.html").read_text(encoding="utf-8")
    assert "ビジネス上の問い" in page and "回答例" in page
    bare = Book(small_book.meta, small_book.accounts, small_book.subscriptions).write(tmp_path / "bare")
    res = run_report(replace(cfg, data=bare, lang="en", output=tmp_path / "out2"), progress=False)
    page = (res.path / "51_business_questions.html").read_text(encoding="utf-8")
    assert res.ok and "Not answered: the book has no milestones table" in page
