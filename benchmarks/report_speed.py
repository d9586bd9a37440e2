"""How long the report takes, against the floor of empty templates run through the same papermill + nbconvert path.

Usage (from the project root): .venv/bin/python benchmarks/report_speed.py [--repeat 3] [--copies 4]

Prints, side by side (best of --repeat, seconds):
  floor     run_report on templates that hold only the parameters cell (same count as the real report)
  report    run_report of reports/quarterly.yaml on data/sample
  xN jobs=1 / jobs=2: N copies of the real templates, run one at a time and two at a time
"""
import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import nbformat

from csbench.report import RunConfig, find_templates, run_report

ROOT = Path(__file__).resolve().parents[1]


def best(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "reports" / "quarterly.yaml"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--copies", type=int, default=4)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        cfg = replace(RunConfig.from_yaml(args.config), output=tmp / "out")
        templates = find_templates(cfg)
        empty, many = tmp / "empty", tmp / "many"
        empty.mkdir(); many.mkdir()
        for t in templates:
            nb = nbformat.read(t, as_version=4)
            nb.cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
            nbformat.write(nb, empty / t.name)
            for i in range(args.copies): shutil.copy(t, many / f"{i:02d}_{t.name}")
        run = lambda c, **kw: run_report(c, progress=False, **kw)
        floor = best(lambda: run(replace(cfg, templates_dir=empty)), args.repeat)
        full = best(lambda: run(cfg), args.repeat)
        n = len(templates) * args.copies
        seq = best(lambda: run(replace(cfg, templates=(), templates_dir=many), jobs=1), args.repeat)
        par = best(lambda: run(replace(cfg, templates=(), templates_dir=many), jobs=2), args.repeat)
        print(f"{'':28s}{'seconds':>9s}{'x floor':>9s}")
        print(f"{f'floor ({len(templates)} empty template(s))':28s}{floor:9.2f}{1:9.2f}")
        print(f"{f'report ({len(templates)} template(s))':28s}{full:9.2f}{full / floor:9.2f}")
        print(f"{f'x{n} templates, jobs=1':28s}{seq:9.2f}{seq / floor:9.2f}")
        print(f"{f'x{n} templates, jobs=2':28s}{par:9.2f}{par / floor:9.2f}   (jobs=1 / jobs=2: {seq / par:.2f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
