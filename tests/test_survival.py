"""Survival analysis on a real-world-shaped account export (telco churn), the bad-input matrix of the survival
functions, and properties of the wrappers (hypothesis)."""
import io
import warnings
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from lifelines import KaplanMeierFitter
from csbench.book import from_account_snapshot
from csbench.frames import account_frame, survival_frame
from csbench.schema import BookError
from csbench.survival import (arr_at_risk, cause_specific_drivers, churn_drivers, cumulative_incidence, kaplan_meier,
                              logrank, renewal_frame, renewal_probability, time_varying_drivers)

AS_OF = "2024-12-31"

# A hand-written slice in the shape of the public IBM "Telco Customer Churn" export (one row per customer; tenure in
# months; Churn Yes/No; TotalCharges is a blank string for new customers, as in the original file).
TELCO_CSV = """customerID,gender,SeniorCitizen,Partner,tenure,Contract,PaymentMethod,MonthlyCharges,TotalCharges,Churn
7590-VHVEG,Female,0,Yes,1,Month-to-month,Electronic check,29.85,29.85,No
5575-GNVDE,Male,0,No,34,One year,Mailed check,56.95,1889.5,No
3668-QPYBK,Male,0,No,2,Month-to-month,Mailed check,53.85,108.15,Yes
7795-CFOCW,Male,0,No,45,One year,Bank transfer (automatic),42.3,1840.75,No
9237-HQITU,Female,0,No,2,Month-to-month,Electronic check,70.7,151.65,Yes
9305-CDSKC,Female,0,No,8,Month-to-month,Electronic check,99.65,820.5,Yes
1452-KIOVK,Male,0,No,22,Month-to-month,Credit card (automatic),89.1,1949.4,No
6713-OKOMC,Female,0,No,10,Month-to-month,Mailed check,29.75,301.9,No
7892-POOKP,Female,0,Yes,28,Month-to-month,Electronic check,104.8,3046.05,Yes
6388-TABGU,Male,0,No,62,One year,Bank transfer (automatic),56.15,3487.95,No
4190-MFLUW,Female,0,Yes,0,Two year,Mailed check,52.55, ,No
8779-QRDMV,Male,1,No,1,Month-to-month,Electronic check,39.65,39.65,Yes
1680-VDCWW,Male,0,Yes,12,One year,Bank transfer (automatic),19.8,202.25,No
4929-XIHVW,Male,1,Yes,2,Month-to-month,Credit card (automatic),95.5,181.65,No
9959-WOFKT,Male,0,No,71,Two year,Bank transfer (automatic),106.7,7382.25,No
4183-MYFRB,Female,0,No,21,Month-to-month,Electronic check,90.05,1862.9,No
"""


def telco_like(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A telco-churn-shaped export built from the public figures of the IBM Telco Customer Churn data (7,043 customers):
    contracts 55.0 % month-to-month / 20.9 % one year / 24.1 % two year; churn 42.7 % / 11.3 % / 2.8 % by contract;
    tenure 0-72 months; monthly charges 18.25-118.75 (mean 64.76); 16.2 % senior citizens; electronic check 33.6 %."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.550, 0.209, 0.241])
    churn_p = pd.Series({"Month-to-month": 0.427, "One year": 0.113, "Two year": 0.028})[contract].to_numpy()
    churn = rng.random(n) < churn_p
    # churners leave early (median ~10 months in the public data); stayers spread over 0-72 months, longer on long contracts
    mean_stay = pd.Series({"Month-to-month": 18, "One year": 42, "Two year": 57})[contract].to_numpy()
    tenure = np.where(churn, np.minimum(72, np.ceil(rng.exponential(14, n))), np.minimum(72, np.round(rng.exponential(mean_stay))))
    charges = np.round(rng.uniform(18.25, 118.75, n), 2)
    pay = rng.choice(["Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"], n,
                     p=[0.336, 0.229, 0.219, 0.216])
    return pd.DataFrame({"customerID": [f"{i:04d}-SYNTH" for i in range(n)], "SeniorCitizen": (rng.random(n) < 0.162).astype(int),
                         "tenure": tenure.astype(int), "Contract": contract, "PaymentMethod": pay, "MonthlyCharges": charges,
                         "Churn": np.where(churn, "Yes", "No")})


def _book_from(csv_text: str):
    raw = pd.read_csv(io.StringIO(csv_text))
    return raw, from_account_snapshot(raw, as_of=AS_OF, tenure="tenure", churned="Churn", mrr="MonthlyCharges",
                                      account_id="customerID", currency="USD", name="telco")


@pytest.fixture(scope="module")
def telco(tmp_path_factory):
    "The generated telco-shaped export, written to CSV and read back, and its Book."
    path = tmp_path_factory.mktemp("telco") / "telco.csv"
    telco_like().to_csv(path, index=False)
    return _book_from(path.read_text())


def test_hand_written_export_end_to_end():
    raw, book = _book_from(TELCO_CSV)
    sf = survival_frame(book, AS_OF)
    assert len(sf) == len(raw) and sf.event.sum() == (raw.Churn == "Yes").sum()
    # durations are the exported tenures (months of 365.25/12 days; tenure 0 becomes one day)
    t = sf.set_index("account_id").duration.reindex(raw.customerID)
    np.testing.assert_allclose(t.to_numpy(), raw.tenure.clip(lower=1 / 30.4375).to_numpy(), atol=0.1)
    km = kaplan_meier(sf, by="Contract")
    assert set(km.fitters_) == {"Month-to-month", "One year", "Two year"}
    assert km.median_.loc["Month-to-month", "churned"] == 5
    assert logrank(sf, by="Contract").loc[0, "df"] == 2


def test_telco_shaped_export_end_to_end(telco):
    raw, book = telco
    sf = survival_frame(book, AS_OF)
    km = kaplan_meier(sf, by="Contract")
    s24 = km.survival_at(24)[24]
    assert s24["Month-to-month"] < s24["One year"] < s24["Two year"]
    lr = logrank(sf, by="Contract")
    assert lr.differs.all()
    cd = churn_drivers(sf, covariates=["Contract", "SeniorCitizen", "PaymentMethod"],
                       reference={"Contract": "Month-to-month", "PaymentMethod": "Mailed check"})
    s = cd.summary_
    assert s.loc["Contract=Two year", "upper"] < 0.3 and s.loc["Contract=One year", "upper"] < 1
    assert s.loc["Contract=Two year", "reading"].startswith("Accounts on two year contracts churn")
    assert "契約Two yearの顧客" in cd.summary("ja").loc["Contract=Two year", "reading"]
    assert 0.6 < cd.concordance_ < 1
    ph = cd.check_ph()
    assert {"statistic", "p", "proportional", "advice"} <= set(ph.columns)
    # one cause only (the export has no cause column): the incidence equals 1 - Kaplan-Meier
    ci = cumulative_incidence(sf)
    np.testing.assert_allclose(ci.incidence_at([12, 24]).to_numpy().ravel(),
                               1 - kaplan_meier(sf).survival_at([12, 24]).to_numpy().ravel(), atol=1e-3)
    # renewal forecast for the accounts still customers at the export date
    rf = renewal_frame(book, AS_OF)
    assert len(rf) == (raw.Churn == "No").sum()
    fc = renewal_probability(cd, rf, as_of=AS_OF, horizon_months=3)
    assert fc.p_stay.between(0, 1).all() and fc.arr.notna().all()
    tot = arr_at_risk(fc)
    assert tot.lower.iloc[0] <= tot.expected_arr_at_risk.iloc[0] <= tot.upper.iloc[0]


def test_raw_export_with_column_names(telco):
    "The same functions on the export itself, no Book: name the columns."
    raw, book = telco
    with pytest.raises(BookError, match="0/1 or True/False"):
        kaplan_meier(raw, duration="tenure", event="Churn")
    df = raw.assign(churned=raw.Churn.eq("Yes"))
    km_raw = kaplan_meier(df, duration="tenure", event="churned", by="Contract")
    km_book = kaplan_meier(survival_frame(book, AS_OF), by="Contract")
    a, b = km_raw.survival_at([6, 12, 24]), km_book.survival_at([6.5, 12.5, 24.5])
    np.testing.assert_allclose(a.to_numpy(), b.loc[a.index].to_numpy(), atol=0.02)
    cd = churn_drivers(df, duration="tenure", event="churned", covariates=["Contract"], reference={"Contract": "Month-to-month"})
    assert cd.summary_.hazard_ratio.lt(1).all()
    lr = logrank(df, duration="tenure", event="churned", by="Contract", correction="bonferroni")
    assert (lr.p_adjusted[1:] == np.minimum(1, 3 * lr.p[1:])).all()


# ---- bad input: every case names the table (the function), the column and, where there are any, the rows ----
GOOD = pd.DataFrame({"account_id": list("abcdef"), "duration": [1.0, 2, 3, 4, 5, 6], "event": [1, 0, 1, 0, 1, 0],
                     "segment": ["x", "y", "x", "y", "x", "y"], "size": [1.0, 2, 3, 4, 5, 7],
                     "cause": ["voluntary", None, "involuntary", None, "voluntary", None]})


def _mut(col, value, row=1):
    def f(df):
        df = df.copy()
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
        return df
    return f


CASES = [  # (id, mutation, column, words in the message)
    ("missing duration", lambda d: d.drop(columns="duration"), "duration", "required column is missing"),
    ("negative duration", _mut("duration", -2.0), "duration", "must be >= 0"),
    ("text duration", _mut("duration", "two"), "duration", "must be a number"),
    ("empty duration", _mut("duration", np.nan), "duration", "must not be empty"),
    ("infinite duration", _mut("duration", np.inf), "duration", "must be finite"),
    ("event yes/no", _mut("event", "Yes"), "event", "0/1 or True/False"),
    ("event 2", _mut("event", 2), "event", "0/1 or True/False"),
    ("empty event", _mut("event", None), "event", "must not be empty"),
]
CALLS = {
    "kaplan_meier": lambda d: kaplan_meier(d, by="segment"),
    "logrank": lambda d: logrank(d, by="segment"),
    "churn_drivers": lambda d: churn_drivers(d, covariates=["segment", "size"]),
    "cumulative_incidence": lambda d: cumulative_incidence(d, by="segment"),
    "cause_specific_drivers": lambda d: cause_specific_drivers(d, covariates=["size"]),
}


@pytest.mark.parametrize("fn", list(CALLS))
@pytest.mark.parametrize("case,mutate,column,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_table_column_rows(fn, case, mutate, column, words):
    with pytest.raises(BookError) as e:
        CALLS[fn](mutate(GOOD))
    v = e.value.violations[0]
    assert v.table == f"{fn} data" and v.column == column and words in v.rule
    if case != "missing duration":
        assert v.n_rows == 1 and list(v.rows.account_id) == ["b"]
        assert f"table '{fn} data', column '{column}'" in str(e.value)


@pytest.mark.parametrize("mutate,column,words", [
    (_mut("size", np.nan, 3), "size", "must not be empty"),
    (_mut("segment", None, 3), "segment", "must not be empty"),
    (lambda d: d.assign(size=1.0), "size", "one value only"),
    (lambda d: d.assign(when=pd.Timestamp("2024-01-01")), "when", "date cannot be a covariate"),
])
def test_bad_covariates(mutate, column, words):
    d = mutate(GOOD)
    with pytest.raises(BookError) as e:
        churn_drivers(d, covariates=[c for c in ["segment", "size", "when"] if c in d])
    v = e.value.violations[0]
    assert (v.table, v.column) == ("churn_drivers data", column) and words in v.rule


def test_not_a_dataframe_and_missing_cause():
    with pytest.raises(BookError, match="must be a pandas DataFrame"):
        kaplan_meier(GOOD.to_dict())
    with pytest.raises(BookError, match="every churned row needs a cause"):
        cumulative_incidence(GOOD.assign(cause=None))


def test_time_varying_bad_panel():
    panel = pd.DataFrame({"account_id": ["a", "a", "b", "b"], "month": pd.to_datetime(["2024-01-31", "2024-02-29"] * 2),
                          "flag": [True, False, True, True], "churn_next_month": [False, True, False, None]})
    with pytest.raises(BookError, match="one row per account and period"):
        time_varying_drivers(pd.concat([panel, panel.iloc[:1]]), covariates=["flag"])
    with pytest.raises(BookError, match="0/1 or True/False"):
        time_varying_drivers(panel.assign(churn_next_month="no"), covariates=["flag"])


# ---- properties ----
survival_tables = st.integers(5, 60).flatmap(lambda n: st.tuples(
    st.lists(st.floats(0, 48, allow_nan=False), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.integers(1, 1000), min_size=n, max_size=n)))


@settings(max_examples=30, deadline=None)
@given(survival_tables, st.integers(2, 1000))
def test_km_properties(table, scale):
    d, e, w = table
    df = pd.DataFrame({"duration": d, "event": e, "arr": w})
    km = kaplan_meier(df)
    s = km.survival_.survival
    assert s.between(0, 1).all() and s.is_monotonic_decreasing
    ref = KaplanMeierFitter().fit(df.duration, df.event)
    np.testing.assert_array_equal(km.survival_.survival.to_numpy(), ref.survival_function_.iloc[:, 0].to_numpy())
    # a value-weighted curve is lifelines' and does not depend on the unit of the weights (whole-number weights here:
    # with fractional weights lifelines' at-risk sums can cancel to -1e-16 at the last time and skip the final drop)
    a = kaplan_meier(df, weights="arr").survival_.survival.to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_w = KaplanMeierFitter().fit(df.duration, df.event, weights=df.arr).survival_function_.iloc[:, 0].to_numpy()
    np.testing.assert_array_equal(a, ref_w)
    b = kaplan_meier(df.assign(arr=df.arr * scale), weights="arr").survival_.survival.to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # the RMST lies between 0 and the horizon
    r = km.rmst(24).iloc[0]
    assert 0 <= r.rmst <= 24 + 1e-9 and r.se >= 0


@settings(max_examples=15, deadline=None)
@given(survival_tables)
def test_logrank_symmetric_and_input_untouched(table):
    d, e, _ = table
    df = pd.DataFrame({"duration": d, "event": e, "g": ["a", "b"] * (len(d) // 2) + ["a"] * (len(d) % 2)})
    before = df.copy()
    r1 = logrank(df, by="g")
    r2 = logrank(df.assign(g=df.g.map({"a": "b", "b": "a"})), by="g")
    np.testing.assert_allclose(r1.statistic.to_numpy(), r2.statistic.to_numpy(), rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(df, before)


# ---- words on the churn-drivers page: proportional-hazards check and readings of unclear effects ----
@pytest.fixture(scope="module")
def ph_case():
    """Hand-made: `fading` accounts churn fast in their first 3 months and hardly after (an effect that changes with
    tenure), `steady` ones at twice the base rate throughout (a constant ratio); `noise` is unrelated to churn."""
    rng = np.random.default_rng(1)
    n = 300
    base, steady = rng.exponential(10, n), rng.exponential(5, n)
    fading = np.where(rng.random(n) < 0.5, rng.uniform(0, 3, n), 3 + rng.exponential(20, n))
    d = np.r_[base, steady, fading]
    df = pd.DataFrame({"duration": np.minimum(d, 24), "event": (d < 24).astype(int),
                       "variant": ["base"] * n + ["steady"] * n + ["fading"] * n, "noise": rng.random(3 * n)})
    return churn_drivers(df, covariates=["variant", "noise"], reference={"variant": "base"})


def test_ph_row_flags_and_variable_advice_agree(ph_case):
    for lang in ["en", "ja"]:
        ph = ph_case.check_ph(lang=lang)
        assert ph.proportional.tolist() == [False, True, True]           # fading fails; steady and noise pass
        assert ph.variable_proportional.tolist() == [False, False, True]  # the advice judges the whole variable
        # one advice for the variable, naming the level whose own check fails, so the passing row does not contradict it
        assert ph.loc["variant=fading", "advice"] == ph.loc["variant=steady", "advice"]
        assert "steady" not in ph.loc["variant=steady", "advice"]
        assert not ph.advice.str.contains(r"strata=|churn_drivers\(").any()       # words on a page, not code
    en, ja = ph_case.check_ph(lang="en").advice, ph_case.check_ph(lang="ja").advice
    assert en["variant=steady"] == ("Variant: the effect changes with tenure (detected for fading); stratify by variant: "
                                    "give each level its own baseline and compare accounts within their level")
    assert ja["variant=steady"].startswith("variant：効果が時間とともに変わる（fadingで検出）。variantで層別化する")
    assert en["noise"] == "holds: no sign the effect changes with tenure"
    assert ja["noise"] == "問題なし（効果が時間で変わる兆候は見られない）"   # not "may be taken as constant"


def test_ph_advice_for_flags_and_numbers_is_words():
    from csbench.survival import _ph_advice
    assert _ph_advice("deep_discount", "flag", [None], "en").startswith("“discount of 20 % or more”: the effect changes")
    assert _ph_advice("start_discount", "number", [None], "en").startswith("Discount at signing: the effect changes")
    assert "契約時の値引き率×log(月数)" in _ph_advice("start_discount", "number", [None], "ja")
    assert _ph_advice("touch_model", "category", ["high_touch"], "en").startswith(
        "Touch model: the effect changes with tenure (detected for High touch); stratify by touch model:")


def test_unclear_effect_reads_as_chance_not_as_no_difference(ph_case):
    s_en, s_ja = ph_case.summary("en"), ph_case.summary("ja")
    unclear = (s_en.lower <= 1) & (s_en.upper >= 1)
    assert unclear.tolist() == [True, False, True]                   # fading (on average) and noise; steady is clear
    p = f"{s_en.loc['noise', 'p']:.2g}"
    assert s_ja.loc["noise", "reading"].endswith(f"（ただし偶然の差と区別できない：p = {p}）")
    assert s_en.loc["noise", "reading"].endswith(f" — but the data cannot tell this from no difference (p = {p})")
    assert not s_ja.reading.str.contains("差がない").any()
    assert not s_en.reading[~unclear].str.contains("cannot tell").any() and not s_ja.reading[~unclear].str.contains("偶然").any()
