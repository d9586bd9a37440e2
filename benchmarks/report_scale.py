"""How the quarterly report grows with the book: the full set on synthetic books of several sizes, each template's time.

Usage (from the project root): .venv/bin/python benchmarks/report_scale.py [--accounts 2000 20000] [--jobs 2]

For each size, a book from `csbench synth` (36 months from 2023-01-01, seed 7, Parquet) in a temporary folder, then
reports/quarterly.yaml run on it in a new process, as `csbench report` runs it (default kernels, `--jobs`), once:
teams re-run the report on their own books, which are often ten times the sample. Prints the wall seconds, the runner's
own, and each template's cells (papermill's durations), and records the total per size. No target: the issue sets
none for large books; the ratio of the largest to the smallest book says how the report scales.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _results import record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CSBENCH = Path(sys.executable).with_name("csbench")


def template_seconds(published: Path) -> dict:
    "Seconds each executed template spent in its cells."
    return {p.stem: sum(c.metadata.get("papermill", {}).get("duration") or 0 for c in nbformat.read(p, as_version=4).cells)
            for p in sorted((published / "notebooks").glob("*.ipynb"))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    base = yaml.safe_load((ROOT / "reports" / "quarterly.yaml").read_text())
    totals = {}
    with tempfile.TemporaryDirectory(prefix="csbench-report-scale-") as tmp:
        tmp = Path(tmp)
        for n in args.accounts:
            book = tmp / f"book{n}"
            t = time.perf_counter()
            subprocess.run([str(CSBENCH), "synth", str(book), "--accounts", str(n), "--months", "36", "--start", "2023-01-01",
                            "--seed", "7", "--currency", "JPY", "--format", "parquet"], check=True, capture_output=True)
            made = time.perf_counter() - t
            cfg = {**base, "name": f"scale{n}", "data": str(book), "templates_dir": str(ROOT / base["templates_dir"]),
                   "output": str(tmp / "out"), "data_roots": [str(tmp), str(ROOT)], "output_root": str(tmp)}
            (tmp / f"q{n}.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
            t = time.perf_counter()
            r = subprocess.run([str(CSBENCH), "report", str(tmp / f"q{n}.yaml"), "--jobs", str(args.jobs)], capture_output=True,
                               text=True, cwd=ROOT)
            wall = time.perf_counter() - t
            if r.returncode: raise SystemExit(f"report on {n:,} accounts failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
            published = Path(r.stdout.strip().splitlines()[-1]).parent
            runner = json.loads((published / "provenance.json").read_text())["seconds"]
            per = template_seconds(published)
            totals[n] = wall
            print(f"{n:,} accounts (book made in {made:.1f} s): report {wall:.1f} s wall, runner {runner:.1f} s; cells per template: "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in per.items()))
            top = max(per, key=per.get)
            record("report_scale", f"full quarterly report, {n:,}-account synthetic book (wall, jobs={args.jobs})", wall, "s",
                   "none (scaling)", None, f"runner {runner:.1f} s; cells {sum(per.values()):.1f} s, the most in {top} ({per[top]:.1f} s)")
    if len(totals) > 1:
        small, large = min(totals), max(totals)
        print(f"{large:,} / {small:,} accounts ({large / small:.0f}x the book): {totals[large] / totals[small]:.1f}x the time")


if __name__ == "__main__":
    main()
