"""Shared by the benchmark scripts: each records its headline ratios to benchmarks/out/results.jsonl, and
`benchmarks/summary.py` prints them as one table and writes benchmarks/results.md (see `make bench`)."""
import json
import time
from pathlib import Path

OUT = Path(__file__).parent / "out"
RESULTS = OUT / "results.jsonl"


def record(bench: str,          # script, e.g. "bench_scale"
           measure: str,        # what was measured, in words
           value: float,        # the measured number
           unit: str,           # "x" for a ratio, "s", "ms", "GB"
           target: str,         # the target in words, e.g. "<= 3x"
           ok: bool | None,     # does it meet the target (None: no target)
           detail: str = "",    # the raw numbers behind a ratio
           ) -> None:
    "Append one result line (the summary keeps the latest line per bench and measure)."
    OUT.mkdir(parents=True, exist_ok=True)
    ok = None if ok is None else bool(ok)   # numpy booleans are not JSON
    row = dict(bench=bench, measure=measure, value=float(value), unit=unit, target=target, ok=ok, detail=detail,
               at=time.strftime("%Y-%m-%d %H:%M:%S"))
    with RESULTS.open("a", encoding="utf-8") as f: f.write(json.dumps(row) + "\n")
    flag = "" if ok is None else ("  meets target" if ok else "  MISSES target")
    print(f"[result] {measure}: {value:,.3g} {unit} (target {target}){flag}  {detail}")
