"""Wrapper overhead of csbench.survival against the raw lifelines calls on the same frame (target: ratio <= 1.15).

Usage (from the project root): .venv/bin/python benchmarks/bench_survival.py [--repeat 7] [--accounts 20000]

Frames: survival_frame of the sample book (data/sample, 2,000 accounts) and of a synthetic book of --accounts
accounts (simulate_book, seed 1). For each task, the raw side does the same work with lifelines directly on the
same rows: the Cox fit gets the covariates already one-hot encoded (csbench encodes them inside the timed call, and
also validates the input), the Kaplan-Meier side splits the frame by group itself. Times are the best of --repeat
runs, the two sides alternating, (each run a few calls, so short tasks are not dominated by timer noise); ratio = csbench / lifelines.
"""
import argparse
import gc
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.utils import median_survival_times

from csbench.book import Book
from csbench.frames import survival_frame
from csbench.survival import churn_drivers, kaplan_meier, logrank
from csbench.synth import simulate_book

ROOT = Path(__file__).resolve().parents[1]
COVARIATES = ["billing", "touch_model", "channel", "industry"]
REFERENCE = {"billing": "monthly", "touch_model": "tech_touch", "channel": "direct", "industry": "manufacturing"}


def best_pair(raw, ours, repeat: int, number: int) -> tuple[float, float]:
    "Best of `repeat` runs of `number` calls each, seconds per call; the two sides alternate so load drifts hit both."
    raw(); ours()                                    # warm up (imports, caches)
    t_raw, t_ours = [], []
    gc.disable()
    try:
        for _ in range(repeat):
            for f, out in ((raw, t_raw), (ours, t_ours)):
                t = time.perf_counter()
                for _ in range(number): f()
                out.append((time.perf_counter() - t) / number)
    finally:
        gc.enable()
    return min(t_raw), min(t_ours)


def encoded(sf: pd.DataFrame) -> pd.DataFrame:
    "The numeric frame lifelines needs: duration, event and the covariates one-hot encoded against REFERENCE."
    cols = {"duration": sf.duration.to_numpy(float), "event": sf.event.to_numpy(int)}
    for c in COVARIATES:
        for v in sorted(set(sf[c]) - {REFERENCE[c]}): cols[f"{c}={v}"] = (sf[c] == v).to_numpy(float)
    return pd.DataFrame(cols, index=sf.index)


def raw_km(sf: pd.DataFrame, by: str) -> dict:
    return {g: KaplanMeierFitter(label=str(g)).fit(d.duration, d.event) for g, d in sf.groupby(by)}


def raw_km_medians(sf: pd.DataFrame, by: str) -> pd.DataFrame:
    rows = []
    for g, f in raw_km(sf, by).items():
        lo, hi = median_survival_times(f.confidence_interval_survival_function_).iloc[0]
        rows.append((g, f.median_survival_time_, lo, hi))
    return pd.DataFrame(rows)


def tasks(sf: pd.DataFrame):
    "(task, raw lifelines call, csbench call, calls per run)."
    X = encoded(sf)
    cox_kw = dict(covariates=COVARIATES, reference=REFERENCE)
    return [
        ("Cox fit (churn_drivers)", lambda: CoxPHFitter().fit(X, "duration", "event"),
         lambda: churn_drivers(sf, **cox_kw), 3),
        ("Cox fit + summary table", lambda: CoxPHFitter().fit(X, "duration", "event").summary,
         lambda: churn_drivers(sf, **cox_kw).summary_, 3),
        ("Kaplan-Meier by touch model", lambda: raw_km(sf, "touch_model"),
         lambda: kaplan_meier(sf, by="touch_model"), 20),
        ("Kaplan-Meier + medians with CI", lambda: raw_km_medians(sf, "touch_model"),
         lambda: kaplan_meier(sf, by="touch_model").median_, 20),
        ("Kaplan-Meier, one curve", lambda: KaplanMeierFitter().fit(sf.duration, sf.event),
         lambda: kaplan_meier(sf), 20),
    ]


def check_same(sf: pd.DataFrame):
    "The two sides compute the same numbers (else the timing compares different work)."
    a = churn_drivers(sf, covariates=COVARIATES, reference=REFERENCE).fitter_.params_
    b = CoxPHFitter().fit(encoded(sf), "duration", "event").params_
    np.testing.assert_array_equal(a.loc[b.index].to_numpy(), b.to_numpy())
    m = kaplan_meier(sf, by="touch_model").median_["median"]
    r = {g: f.median_survival_time_ for g, f in raw_km(sf, "touch_model").items()}
    assert all(m[g] == r[g] for g in r)


from _results import record  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--accounts", type=int, default=20000)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    frames = {"sample (2,000 accounts)": survival_frame(Book.read(ROOT / "data" / "sample"), "2025-12-31")}
    big, _ = simulate_book(args.accounts, start="2023-01-01", months=36, seed=1)
    frames[f"synthetic ({args.accounts:,} accounts)"] = survival_frame(big, "2025-12-31")
    rows = []
    for name, sf in frames.items():
        check_same(sf)
        for task, raw, ours, number in tasks(sf):
            n = number if len(sf) < 5000 else max(1, number // 3)
            t_raw, t_ours = best_pair(raw, ours, args.repeat, n)
            rows.append({"frame": name, "task": task, "lifelines_ms": 1e3 * t_raw, "csbench_ms": 1e3 * t_ours,
                         "ratio": t_ours / t_raw})
    out = pd.DataFrame(rows)
    with pd.option_context("display.width", 120, "display.max_columns", 10):
        print(out.to_string(index=False, formatters={"lifelines_ms": "{:,.1f}".format, "csbench_ms": "{:,.1f}".format,
                                                     "ratio": "{:.2f}x".format}))
    worst = out.loc[out.ratio.idxmax()]
    print(f"\nworst ratio {worst.ratio:.2f}x ({worst.task}, {worst.frame}); target <= 1.15x: "
          f"{'met' if out.ratio.max() <= 1.15 else 'NOT met'}")
    record("bench_survival", "survival wrappers / raw lifelines (worst task)", worst.ratio, "x", "<= 1.15x",
           worst.ratio <= 1.15, f"{worst.task}, {worst.frame}: {worst.csbench_ms:,.1f} vs {worst.lifelines_ms:,.1f} ms")


if __name__ == "__main__":
    main()
