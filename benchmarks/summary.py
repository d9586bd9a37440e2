"""Print the latest result of every benchmark as one table and write benchmarks/results.md with the machine.

Run after the benchmark scripts (`make bench` does): .venv/bin/python benchmarks/summary.py
"""
import json
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd

from _results import RESULTS

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    mem = ""
    try:
        kb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration): pass
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration): pass
    load = ", load %.1f %.1f %.1f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} cores ({cpu}){mem}; {platform.system()} {platform.release()}; Python {platform.python_version()}{load}"


def _markdown(df: pd.DataFrame) -> str:
    "A GitHub table (pandas' to_markdown needs tabulate, which csbench does not depend on)."
    cell = lambda v: str(v).replace("|", "\\|")
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False)])


def main():
    if not RESULTS.exists(): raise SystemExit("no results yet: run the benchmark scripts first (make bench)")
    rows = [json.loads(l) for l in RESULTS.read_text(encoding="utf-8").splitlines() if l.strip()]
    df = pd.DataFrame(rows).drop_duplicates(["bench", "measure"], keep="last")
    df["meets"] = df.ok.map({True: "yes", False: "NO", None: "–"}).fillna("–")
    df["value"] = [f"{v:,.3g} {u}" for v, u in zip(df.value, df.unit)]
    table = df[["bench", "measure", "value", "target", "meets", "detail", "at"]]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    with pd.option_context("display.max_colwidth", 80, "display.width", 250):
        print(table.drop(columns="at").to_string(index=False))
    md = ["# Benchmark results", "",
          f"Machine: {machine()}. Commit {commit or '?'}. Regenerate with `make bench` "
          "(every ratio is measured side by side in one run; see each script's docstring).", "",
          _markdown(table), ""]
    (ROOT / "benchmarks" / "results.md").write_text("\n".join(md), encoding="utf-8")
    print(f"\nwritten: benchmarks/results.md ({len(table)} results)")


if __name__ == "__main__":
    main()
