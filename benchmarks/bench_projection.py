"""Timing of csbench.projection: one cohort, and 1,000 cohorts (vectorised vs a scipy loop).

Targets: one cohort <= 50 ms, 1,000 cohorts <= 5 s. Run: .venv/bin/python benchmarks/bench_projection.py
Prints the best of `REPEATS` runs (and the median), so that a busy machine does not inflate the numbers.
"""
import time
import warnings
import numpy as np
import pandas as pd
from csbench.projection import BetaDiscreteWeibull, ShiftedBetaGeometric, fit_cohorts
from _results import record

REPEATS = 5
REGULAR = np.array([1000, 631, 468, 382, 326, 289, 262, 241])   # Fader & Hardie (2007), years 0-7


def cohort_table(m: int, *, seed: int = 0, periods: int = 24) -> pd.DataFrame:
    "m sBG cohorts (random alpha, beta, size 200-2000), the youngest observed for 6 periods, the oldest for `periods`."
    rng = np.random.default_rng(seed)
    alpha, beta = np.exp(rng.normal(-0.3, 0.5, m)), np.exp(rng.normal(0.8, 0.5, m))
    n = rng.integers(200, 2000, m)
    rows = []
    for i in range(m):
        T = rng.geometric(rng.beta(alpha[i], beta[i], n[i]))
        share = (T[None, :] > np.arange(periods + 1)[:, None]).mean(1)
        share[max(6, periods - i * periods // m) + 1:] = np.nan
        rows.append(share)
    tab = pd.DataFrame(rows, columns=range(periods + 1))
    tab.insert(0, "size", n)
    return tab


def timed(f, repeats=REPEATS):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return min(ts), float(np.median(ts))


def loop_fit(tab, cls=ShiftedBetaGeometric):
    "The plain alternative: one scipy fit per cohort."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [cls().fit(tab.iloc[i, 1:], n=tab.iloc[i, 0]) for i in range(len(tab))]


def main():
    warnings.simplefilter("ignore")
    tab = cohort_table(1000)
    rows = []
    def add(what, secs, target):
        best, med = secs
        rows.append({"what": what, "best_s": best, "median_s": med, "target_s": target,
                     "share_of_target": best / target if target else np.nan})
    add("sBG, one cohort (F&H Regular, 8 periods)", timed(lambda: ShiftedBetaGeometric().fit(REGULAR), 20), 0.050)
    add("BdW, one cohort (F&H Regular, 8 periods)", timed(lambda: BetaDiscreteWeibull().fit(REGULAR), 20), 0.050)
    add("sBG, one cohort via fit_cohorts (25 periods)", timed(lambda: fit_cohorts(tab.iloc[:1], sizes="size"), 20), 0.050)
    vec = timed(lambda: fit_cohorts(tab, sizes="size"))
    add("sBG, 1,000 cohorts, fit_cohorts (vectorised)", vec, 5.0)
    loop = timed(lambda: loop_fit(tab), 1)
    add("sBG, 1,000 cohorts, scipy loop (reference)", loop, 5.0)
    add("BdW, 1,000 cohorts, fit_cohorts (vectorised)", timed(lambda: fit_cohorts(tab, sizes="size", model="bdw"), 3), 5.0)
    out = pd.DataFrame(rows).set_index("what")
    print(out.to_string(float_format="{:.4f}".format))
    print(f"\nvectorised vs scipy loop for 1,000 sBG cohorts: {loop[0] / vec[0]:.1f}x faster")
    fits = fit_cohorts(tab, sizes="size")
    print("status of the 1,000 fits:", fits.status.value_counts().to_dict())
    one, many = out.loc["sBG, one cohort (F&H Regular, 8 periods)", "best_s"], vec[0]
    record("bench_projection", "sBG fit, one cohort", 1e3 * one, "ms", "<= 50 ms", one <= 0.05, f"median {1e3 * out.iloc[0].median_s:.1f} ms")
    record("bench_projection", "sBG fit, 1,000 cohorts (vectorised)", many, "s", "<= 5 s", many <= 5,
           f"scipy loop {loop[0]:.1f} s ({loop[0] / many:.0f}x slower)")


if __name__ == "__main__":
    main()
