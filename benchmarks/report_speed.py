"""How long the report takes, against the floor of empty templates run through the same papermill + nbconvert path.

Usage (from the project root): .venv/bin/python benchmarks/report_speed.py [--repeat 3] [--jobs 1 2] [--no-profile]

Prints, side by side (best of --repeat runs, interleaved so all variants see the same load), wall-clock seconds and
CPU seconds (the runner's and its kernels'), each with its ratio to the floor run with the same jobs:
  floor            run_report on templates that hold only the parameters cell (as many as the real report has)
  report           run_report of reports/quarterly.yaml on data/sample, the templates as they are
  report, snapshot the same templates with every `Book.read(p.data)` replaced by `p.read_book()` (the runner's
                   validated Parquet snapshot), to show what templates gain by reading it
CPU seconds do not grow when other processes share the machine; wall seconds do, so read the CPU ratio on a busy box.
Then where the time goes: the runner's one-off steps (read + validate the book, fingerprint, snapshot), each
template's execution in the best full run against an empty template's, and (unless --no-profile) the CPU seconds of
each template's cells, run one after another in a plain Python process.
Target (issue 9): report <= 1.5 x floor.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import nbformat

from csbench.book import Book
sys.path.insert(0, str(Path(__file__).parent))
from _results import record  # noqa: E402
from csbench.report import RunConfig, _SNAPSHOT, _read_snapshot, _write_snapshot, find_templates, run_report

ROOT = Path(__file__).resolve().parents[1]

# Runs a template's code cells in this process, parameters replaced, and prints [first line, CPU s, wall s] per cell.
CELLS = r"""
import contextlib, io, json, os, sys, time
import matplotlib; matplotlib.use("Agg")
nb, params = json.load(open(sys.argv[1])), json.loads(sys.argv[2])
os.chdir(os.path.dirname(os.path.abspath(sys.argv[1])))
g, out = {}, []
for c in nb["cells"]:
    if c["cell_type"] != "code": continue
    src = "".join(c["source"])
    t, w = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(src, "cell", "exec"), g)
        if "parameters" in c.get("metadata", {}).get("tags", []): g.update(params)
    first = next((l.strip("# ") for l in src.splitlines() if l.strip()), "")
    out.append([first[:70], time.process_time() - t, time.perf_counter() - w])
print(json.dumps(out))
"""


def cpu() -> float:
    "CPU seconds used so far by this process and by its children that have ended (the kernels)."
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def copy_templates(templates, folder: Path, edit=lambda nb: nb) -> Path:
    folder.mkdir()
    for t in templates: nbformat.write(edit(nbformat.read(t, as_version=4)), folder / t.name)
    return folder


def empty(nb):
    nb.cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return nb


def snapshot_reader(nb):
    for c in nb.cells:
        if c.cell_type == "code": c.source = c.source.replace("Book.read(p.data)", "p.read_book()")
    return nb


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "reports" / "quarterly.yaml"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        cfg = replace(RunConfig.from_yaml(args.config), output=tmp / "out")
        templates = find_templates(cfg)
        variants = {"floor": replace(cfg, templates=(), templates_dir=copy_templates(templates, tmp / "empty", empty)),
                    "report": cfg,
                    "report, snapshot": replace(cfg, templates=(), templates_dir=copy_templates(templates, tmp / "snap", snapshot_reader))}
        print(f"{len(templates)} template(s): {', '.join(t.stem for t in templates)}; {os.cpu_count()} CPU(s); "
              f"load average {os.getloadavg()[0]:.1f} at the start; best of {args.repeat}\n", flush=True)
        wall, cpus, results = {}, {}, {}
        for _ in range(args.repeat):  # interleaved, so the floor and the report see the same load
            for name, c in variants.items():
                for j in args.jobs:
                    t, c0 = time.perf_counter(), cpu()
                    res = run_report(c, progress=False, jobs=j)
                    dt, dc = time.perf_counter() - t, cpu() - c0
                    if dt < wall.get((name, j), float("inf")): wall[name, j], results[name, j] = dt, res
                    cpus[name, j] = min(dc, cpus.get((name, j), float("inf")))
        head = "".join(f"{f'wall j={j}':>11s}{'x floor':>8s}" for j in args.jobs) + "".join(f"{f'CPU j={j}':>11s}{'x floor':>8s}" for j in args.jobs)
        print(f"{'seconds':20s}{head}")
        for name in variants:
            print(f"{name:20s}" + "".join(f"{wall[name, j]:11.2f}{wall[name, j] / wall['floor', j]:8.2f}" for j in args.jobs)
                  + "".join(f"{cpus[name, j]:11.2f}{cpus[name, j] / cpus['floor', j]:8.2f}" for j in args.jobs))
        print(f"(load average {os.getloadavg()[0]:.1f} at the end)")
        for j in args.jobs:
            r = wall["report", j] / wall["floor", j]
            record("report_speed", f"full quarterly report / floor of {len(templates)} empty templates (wall, jobs={j})", r, "x",
                   "<= 1.5x", r <= 1.5, f"{wall['report', j]:.1f} s vs {wall['floor', j]:.1f} s; CPU "
                   f"{cpus['report', j]:.1f} vs {cpus['floor', j]:.1f} s ({cpus['report', j] / cpus['floor', j]:.2f}x)")

        print("\nwhere the time goes (seconds)")
        t = time.perf_counter(); book = Book.read(cfg.data); t_read = time.perf_counter() - t
        t = time.perf_counter(); fp = book.fingerprint(); t_fp = time.perf_counter() - t
        t = time.perf_counter(); snap = _write_snapshot(book, tmp / "s" / _SNAPSHOT, cfg.data, fp); t_write = time.perf_counter() - t
        t = time.perf_counter(); _read_snapshot(snap, cfg.data); t_snap = time.perf_counter() - t
        print(f"  runner, once: read + validate the book {t_read:.2f}, fingerprint {t_fp:.2f}, write the snapshot {t_write:.2f}")
        print(f"  per template: Book.read(p.data) {t_read:.2f} vs p.read_book() from the snapshot {t_snap:.2f}")
        j = args.jobs[0]
        floor_each = {t["name"]: t["seconds"] for t in results["floor", j].provenance["templates"]}
        for name in ("report", "report, snapshot"):
            prov = results[name, j].provenance
            print(f"  {name} (jobs={j}, best run): {prov['seconds']:.2f} s; each template, kernel start to shutdown (wall):")
            for t in prov["templates"]:
                print(f"    {t['name']:28s}{t['seconds']:7.2f}   empty template {floor_each[t['name']]:5.2f}")
        if args.profile:
            params = json.dumps({"data": str(cfg.data), "period": cfg.period, "as_of": "", "lang": cfg.lang, "out_dir": ""})
            print("  each template's cells in one plain Python process (CPU s; Agg backend, no kernel, no HTML):")
            for t in templates:
                r = subprocess.run([sys.executable, "-c", CELLS, str(t), params], capture_output=True, text=True,
                                   env={**os.environ, "MPLBACKEND": "Agg"})
                if r.returncode: print(f"    {t.stem}: failed: {r.stderr.strip().splitlines()[-1:]}"); continue
                cells = json.loads(r.stdout.strip().splitlines()[-1])
                print(f"    {t.stem}: {sum(c[1] for c in cells):.2f} CPU s in {len(cells)} cells; the largest:")
                for first, c, w in sorted(cells, key=lambda c: -c[1])[:4]: print(f"      {c:6.2f}  {first}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
