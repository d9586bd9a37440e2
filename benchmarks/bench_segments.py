"""Coverage plan solver against the plain MILP, and the cost of each step of the segments chapter, by book size.

Usage (from the project root): .venv/bin/python benchmarks/bench_segments.py [--accounts 2000 6000 20000] [--repeat 3]

For each synthetic book (simulate_book, seed 1, 48 months, scored at its data end with its planted effects, so the
timings do not depend on estimation): the time of touch_outlook, of compare_strategies with the seven strategies and
the current assignment, and of coverage_plan at the team's CSM hours; then the plan solver (LP greedy, reduced-cost
fixing, MILP on the undecided accounts) side by side with scipy.optimize.milp on the whole problem: seconds, value
difference (plan - full MILP; >= 0 means the plan lost nothing) and ratio = plan solver / full MILP. Best of --repeat.
"""
import argparse
import time
import warnings

import numpy as np
import pandas as pd

from csbench.segments import (TOUCH_MODELS, ArrTiers, BehaviourClusters, BrandReferral, CapacityRule, CurrentTouch,
                              IndustryPods, RiskValueGrid, SizePotential, TouchEffects, compare_strategies, coverage_model,
                              coverage_plan, touch_outlook)
from csbench.segments import _solve_milp, _solve_plan
from csbench.synth import simulate_book


def best(f, repeat):
    out, ts = None, []
    for _ in range(repeat):
        t = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t)
    return min(ts), out


def main(accounts, repeat, milp_limit):
    warnings.simplefilter("ignore")
    rows = []
    for n in accounts:
        book, truth = simulate_book(n, start="2021-01-01", months=48, seed=1)
        as_of = truth.data_end - pd.Timedelta(days=1)
        te = truth.touch_effects
        effects = TouchEffects.assumed(churn_hr={t: te[t]["churn_hr"] for t in ("high_touch", "low_touch")},
                                       expansion_multiplier={t: te[t]["expansion_multiplier"] for t in ("high_touch", "low_touch")})
        t_out, out = best(lambda: touch_outlook(book, as_of=as_of, effects=effects), repeat)
        cov = coverage_model(book)
        strategies = [CurrentTouch(), ArrTiers(), CapacityRule(), SizePotential(), IndustryPods(), BrandReferral(),
                      BehaviourClusters(), RiskValueGrid()]
        t_cmp, _ = best(lambda: compare_strategies(book, as_of=as_of, strategies=strategies, outlook=out, coverage=cov), repeat)
        t_plan, _ = best(lambda: coverage_plan(book, as_of=as_of, csm_hours_budget=cov.team_hours, outlook=out, coverage=cov), repeat)
        V, H = out.values(), np.array([cov.hours_per_account[t] for t in TOUCH_MODELS])
        t_solver, (a, facts) = best(lambda: _solve_plan(V, H, cov.team_hours), repeat)
        t_full, (full, msg) = best(lambda: _solve_milp(V, H, cov.team_hours, milp_limit), 1)
        k = len(V)
        diff = V[np.arange(k), a].sum() - (V[np.arange(k), full].sum() if full is not None else np.nan)
        rows.append({"accounts": n, "active": k, "outlook_s": t_out, "compare_8_s": t_cmp, "coverage_plan_s": t_plan,
                     "plan_solver_s": t_solver, "full_milp_s": t_full, "ratio": t_solver / t_full,
                     "plan_minus_full_yen": diff, "certified_gap_yen": facts["gap"], "milp_accounts": facts["core_accounts"],
                     "full_milp_status": msg.split("(")[0].strip()})
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, nargs="+", default=[2000, 6000, 20000])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--milp-limit", type=float, default=60.0, help="time limit of the full MILP, seconds")
    a = p.parse_args()
    main(a.accounts, a.repeat, a.milp_limit)
