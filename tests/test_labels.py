"The catalog of user-facing words: every chapter's words present in English and Japanese, with the same fields."
import re

import pytest

from csbench.labels import _CHAPTER_MODULES, catalog

KEPT = {"ARR", "PR AUC", "Core", "Pro", "Enterprise", "Insights"}   # acronyms and product names: written the same in Japanese


@pytest.fixture(scope="module")
def cat():
    return catalog()


def fields(text: str) -> list:
    return sorted(re.findall(r"\{(\w*)[^{}]*\}", text))


def test_every_chapter_is_in_the_catalog(cat):
    assert set(cat.chapter) == {"labels", "signal_values", *_CHAPTER_MODULES}
    assert not cat.duplicated(["chapter", "key"]).any()
    assert len(cat) > 400


def test_both_languages_present_with_the_same_fields(cat):
    empty = cat[(cat.en.str.strip() == "") | (cat.ja.str.strip() == "")]
    assert empty.empty, empty
    mismatch = cat[[fields(e) != fields(j) for e, j in zip(cat.en, cat.ja)]]
    assert mismatch.empty, mismatch[["chapter", "key", "en", "ja"]].to_string()


def test_japanese_is_not_a_copy_of_the_english(cat):
    japanese = cat.ja.str.contains(r"[\u3040-\u30ff\u3400-\u9fff\uff00-\uffef]")
    untranslated = cat[~japanese & ~cat.ja.isin(KEPT)]
    assert untranslated.empty, untranslated[["chapter", "key", "en", "ja"]].to_string()


def test_a_chapter_lookup_goes_through_its_words(cat):
    from csbench.health import health_label
    from csbench.questions import question_label
    from csbench.signals import signal_label
    from csbench.survival import survival_label
    row = cat[cat.chapter == "survival"].iloc[0]
    assert (survival_label(row.key), survival_label(row.key, "ja")) == (row.en, row.ja)
    assert health_label("nrr", "ja") == cat.set_index(["chapter", "key"]).loc[("labels", "nrr"), "ja"]
    assert signal_label("some_new_value") == "some new value" and signal_label(7, "ja") == "7"
    assert (signal_label("self_serve"), signal_label("self_serve", "ja"), signal_label("retail")) == ("Self-serve", "セルフサーブ", "Retail")
    val = cat[cat.chapter == "signal_values"].iloc[0]
    assert signal_label(val.key, "ja") == val.ja and question_label(val.key, "ja") == val.ja
