"""How long the report takes, against the floor of empty templates run through the same papermill + nbconvert path.

Usage (from the project root): .venv/bin/python benchmarks/report_speed.py [--repeat 3] [--jobs 1 2] [--no-profile] [--against REV]

Every run is a new Python process calling `run_report`, as `csbench report` (and `make report`) does, so the runner's
own imports (papermill, nbconvert) count. Prints, side by side (best of --repeat runs, interleaved so all variants see
the same load), wall-clock seconds and CPU seconds (the runner's and its kernels'), each with its ratio to the floor
run with the same jobs:
  floor                 the issue's floor: templates that hold only the parameters cell (as many as the real report
                        has), each through papermill.execute_notebook in a kernel of its own and nbconvert's
                        HTMLExporter, in a bare script (no book read, no index page), `jobs` at once in threads
  floor, runner         the same empty templates through csbench's runner with kernel='fresh': the floor plus what
                        the runner does around the templates (read + validate + snapshot the book, index, publish)
  floor, warm kernels   the same empty templates with the default runner (kernel='warm'), for reference
  imports only          the templates cut down to their parameters cell and their import statements (every one, from
                        every cell), with the default runner: the libraries the analyses need, loaded, and nothing run.
                        Its ratio to the floor is the least any report with these analyses can reach here
  imports + figures     the same, then the report's own figures drawn (each made once beforehand by running the
                        templates in this process, saved with cloudpickle, and here loaded and shown with
                        `show_figure` as the templates do): the libraries and the charts, with no analysis computed.
                        A lower bound for this report: above 1.5 x the floor, no run of these pages can meet the target
  report                reports/quarterly.yaml on data/sample with the default runner: kernel='warm', one kernel per
                        job running its templates in turn, reset between them
  report, fresh kernels the same with kernel='fresh' (a kernel per template, how the runner worked before)
  report at REV         with --against REV (a git revision, e.g. HEAD~3 or main): the same report made by the code and
                        templates of REV, from a git worktree with this venv (its dependencies must be the same), so a
                        change is measured against what it changes, run for run, on the same machine at the same moment
CPU seconds do not grow when other processes share the machine; wall seconds do, so read the CPU ratio on a busy box.
Then where the time goes: the runner's one-off steps (imports, read + validate the book, fingerprint, snapshot), each
template in the best default run (kernel start or reset, its cells, its HTML page) and, unless --no-profile, the
CPU seconds of each template's cells run one after another in a plain Python process, and the csbench functions
they spend them in (cProfile, cumulative).
Target (issue 9): report <= 1.5 x floor.
"""
import argparse
import ast
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

sys.path.insert(0, str(Path(__file__).parent))
from _results import record  # noqa: E402
from csbench.book import Book  # noqa: E402
from csbench.report import RunConfig, _SNAPSHOT, _exporter, _page, _write_snapshot, find_templates  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# One report run in a new process, as `csbench report` makes it (with its import guard): argv config, output, templates_dir ('' = the
# config's), jobs, kernel. Prints the published folder.
RUN = r"""
import sys
from dataclasses import replace
from pathlib import Path
import csbench
try: from csbench.cli import _skip_iri_grammar
except ImportError: pass  # a revision (--against) from before the guard: as its CLI ran
else: _skip_iri_grammar()  # as `csbench report` does
from csbench.report import RunConfig, run_report
assert Path(csbench.__file__).resolve().is_relative_to(Path.cwd().resolve()), f"csbench from {csbench.__file__}, not {Path.cwd()}"
config, output, templates_dir, jobs, kernel = sys.argv[1:]
cfg = replace(RunConfig.from_yaml(config), output=Path(output))
if templates_dir: cfg = replace(cfg, templates=(), templates_dir=Path(templates_dir))
print(run_report(cfg, progress=False, jobs=int(jobs), kernel=kernel).path)
"""

# The floor: argv folder of empty templates, output folder, jobs, parameters (JSON). Prints the output folder. Only
# papermill and nbconvert; the import guard of `csbench report` (two lines, inlined) so the floor is not inflated.
BARE = r"""
import json, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
if "jsonschema._format" not in sys.modules: sys.modules.setdefault("rfc3987_syntax", None)
import papermill as pm
from nbconvert import HTMLExporter
src, out, jobs, params = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
out.mkdir(parents=True)
exporter = HTMLExporter(exclude_input=True)
def one(nb):
    executed = out / nb.name
    pm.execute_notebook(nb, executed, parameters=params, progress_bar=False, cwd=nb.parent)
    executed.with_suffix(".html").write_text(exporter.from_filename(str(executed))[0], encoding="utf-8")
with ThreadPoolExecutor(jobs) as pool: list(pool.map(one, sorted(src.glob("*.ipynb"))))
print(out)
"""

# Runs a template's code cells in this process, parameters replaced; prints [first line, CPU s, wall s] per cell
# and, with a third argument, the csbench functions the cells after the imports spend most CPU in (cProfile).
CELLS = r"""
import contextlib, cProfile, io, json, os, pstats, sys, time
import matplotlib; matplotlib.use("Agg")
nb, params, prof = json.load(open(sys.argv[1])), json.loads(sys.argv[2]), cProfile.Profile()
os.chdir(os.path.dirname(os.path.abspath(sys.argv[1])))
g, out, code = {}, [], [c for c in nb["cells"] if c["cell_type"] == "code"]
for i, c in enumerate(code):
    src = "".join(c["source"])
    t, w = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        if i >= 2: prof.enable()  # after the parameters and the imports
        exec(compile(src, "cell", "exec"), g)
        prof.disable()
        if "parameters" in c.get("metadata", {}).get("tags", []): g.update(params)
    first = next((l.strip("# ") for l in src.splitlines() if l.strip()), "")
    out.append([first[:70], time.process_time() - t, time.perf_counter() - w])
fns = sorted(((ct, f"{f.split('csbench/')[1]}:{name}") for (f, _, name), (_, _, _, ct, _) in pstats.Stats(prof).stats.items()
              if "csbench/" in f and not name.startswith("<")), reverse=True)
print(json.dumps({"cells": out, "functions": fns[:6]}))
"""


# Runs every template's code cells in this process (parameters replaced) with `csbench.report.show_figure` saving each
# figure with cloudpickle (formatters are lambdas) under argv folder/<template>/NN.pkl instead of showing it.
SAVE_FIGURES = r"""
import contextlib, io, json, os, sys
import matplotlib; matplotlib.use("Agg")
import cloudpickle, matplotlib.pyplot as plt
import csbench.report
folder, params, templates = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
for t in templates:
    out = os.path.join(folder, os.path.splitext(os.path.basename(t))[0]); os.makedirs(out)
    def save(fig=None, *, alt=None):
        for f in ([fig] if fig is not None else [plt.figure(n) for n in plt.get_fignums()]):
            with open(os.path.join(out, f"{len(os.listdir(out)):02d}.pkl"), "wb") as fh: cloudpickle.dump(f, fh)
            plt.close(f)
    csbench.report.show_figure = save   # the templates import it by name when they run
    nb, g = json.load(open(t)), {}
    os.chdir(os.path.dirname(os.path.abspath(t)))
    for c in [c for c in nb["cells"] if c["cell_type"] == "code"]:
        with contextlib.redirect_stdout(io.StringIO()): exec(compile("".join(c["source"]), "cell", "exec"), g)
        if "parameters" in c.get("metadata", {}).get("tags", []): g.update(params)
    plt.close("all")
"""


def children_cpu() -> float:
    "CPU seconds used by the child processes that have ended (a run's process and the kernels it waited for)."
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def copy_templates(templates, folder: Path, edit) -> Path:
    "Copies of `templates` in `folder`, each changed by `edit(nb, name)` (name: the template's, without .ipynb)."
    folder.mkdir()
    for t in templates: nbformat.write(edit(nbformat.read(t, as_version=4), t.stem), folder / t.name)
    return folder


def empty(nb, name=None):
    nb.cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return nb


def imports_only(nb, name=None):
    "The parameters cell, then one cell with every import statement of the template's code (nothing else runs)."
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    lines = []
    for c in nb.cells:
        if c.cell_type != "code" or c in params: continue
        lines += [ast.get_source_segment(c.source, n) for n in ast.walk(ast.parse(c.source)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    nb.cells = params + [nbformat.v4.new_code_cell("\n".join(dict.fromkeys(lines)))]
    return nb


def imports_and_figures(folder: Path):
    "`imports_only`, then a cell that loads the template's saved figures (`SAVE_FIGURES`) and shows them as the template does."
    def edit(nb, name):
        nb = imports_only(nb)
        nb.cells.append(nbformat.v4.new_code_cell(
            f"import glob, cloudpickle\nfrom csbench.report import show_figure\nfor f in sorted(glob.glob({str(folder / name / '*.pkl')!r})):\n"
            "    with open(f, 'rb') as fh: show_figure(cloudpickle.load(fh))"))
        return nb
    return edit


def run_once(config: str, output: Path, templates_dir: str, jobs: int, kernel: str, root: Path = ROOT) -> tuple[float, float, Path]:
    """Wall and CPU seconds of one report run in a new process (with the csbench of `root`), and the folder it published;
    kernel='bare': the floor script on `templates_dir` instead."""
    t, c = time.perf_counter(), children_cpu()
    env = os.environ if root == ROOT else {**os.environ, "PYTHONPATH": str(root)}  # the kernels inherit it
    if kernel == "bare":
        cfg = RunConfig.from_yaml(config)
        params = {"data": str(cfg.data), "period": cfg.period, "lang": cfg.lang, "out_dir": str(output / "sections")}
        argv = [sys.executable, "-c", BARE, templates_dir, str(output), str(jobs), json.dumps(params)]
    else: argv = [sys.executable, "-c", RUN, config, str(output), templates_dir, str(jobs), kernel]
    r = subprocess.run(argv, capture_output=True, text=True, cwd=root, env=env)
    dt, dc = time.perf_counter() - t, children_cpu() - c
    if r.returncode: raise SystemExit(f"report run failed ({kernel}, jobs={jobs}):\n{r.stderr[-3000:]}")
    return dt, dc, Path(r.stdout.strip().splitlines()[-1])


def cells_seconds(published: Path) -> float:
    "Seconds the executed templates of a published report spent in their cells (papermill's durations)."
    return sum(c.metadata.get("papermill", {}).get("duration") or 0
               for p in (published / "notebooks").glob("*.ipynb") for c in nbformat.read(p, as_version=4).cells)


def timed(f, *args):
    t = time.perf_counter()
    out = f(*args)
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "reports" / "quarterly.yaml"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--against", metavar="REV", help="also run the report of git revision REV, side by side")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    old = tmp / "against"
    try:
        cfg = RunConfig.from_yaml(args.config)
        templates = find_templates(cfg)
        floor_dir = str(copy_templates(templates, tmp / "empty", empty))
        imports_dir = str(copy_templates(templates, tmp / "imports", imports_only))
        params = json.dumps({"data": str(cfg.data), "period": cfg.period, "as_of": "", "lang": cfg.lang, "out_dir": ""})
        r = subprocess.run([sys.executable, "-c", SAVE_FIGURES, str(tmp / "figures"), params, *map(str, templates)],
                           capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
        if r.returncode: raise SystemExit(f"saving the report's figures failed:\n{r.stderr[-3000:]}")
        n_figures = len(list((tmp / "figures").rglob("*.pkl")))
        figures_dir = str(copy_templates(templates, tmp / "with_figures", imports_and_figures(tmp / "figures")))
        variants = {"floor": (floor_dir, "bare"), "floor, runner": (floor_dir, "fresh"), "floor, warm kernels": (floor_dir, "warm"),
                    "imports only": (imports_dir, "warm"), "imports + figures": (figures_dir, "warm"),
                    "report": ("", "warm"), "report, fresh kernels": ("", "fresh")}
        roots = dict.fromkeys(variants, ROOT)
        if args.against:
            if not Path(args.config).resolve().is_relative_to(ROOT): raise SystemExit(f"--against needs a config inside {ROOT}; got {args.config}")
            git = subprocess.run(["git", "worktree", "add", "--detach", str(old), args.against], cwd=ROOT, capture_output=True, text=True)
            if git.returncode: raise SystemExit(f"--against {args.against}: {git.stderr.strip()}")
            rel = Path(args.config).resolve().relative_to(ROOT)  # the same config, as REV has it
            variants[f"report at {args.against}"], roots[f"report at {args.against}"] = ("", "warm"), old
        print(f"{len(templates)} template(s): {', '.join(t.stem for t in templates)}; {os.cpu_count()} CPU(s); "
              f"load average {os.getloadavg()[0]:.1f} at the start; best of {args.repeat}; each run a new process\n", flush=True)
        wall, cpus, published = {}, {}, {}
        for i in range(args.repeat):  # interleaved, so the floor and the report see the same load
            for k, (name, (tdir, kernel)) in enumerate(variants.items()):
                for j in args.jobs:
                    root = roots[name]
                    config = args.config if root == ROOT else str(root / rel)
                    dt, dc, path = run_once(config, tmp / "out" / f"{i}-{j}-{k}", tdir, j, kernel, root)
                    if dt < wall.get((name, j), float("inf")): wall[name, j], published[name, j] = dt, path
                    cpus[name, j] = min(dc, cpus.get((name, j), float("inf")))
        head = "".join(f"{f'wall j={j}':>11s}{'x floor':>8s}" for j in args.jobs) + "".join(f"{f'CPU j={j}':>11s}{'x floor':>8s}" for j in args.jobs)
        print(f"{'seconds':22s}{head}")
        for name in variants:
            print(f"{name:22s}" + "".join(f"{wall[name, j]:11.2f}{wall[name, j] / wall['floor', j]:8.2f}" for j in args.jobs)
                  + "".join(f"{cpus[name, j]:11.2f}{cpus[name, j] / cpus['floor', j]:8.2f}" for j in args.jobs))
        print(f"(load average {os.getloadavg()[0]:.1f} at the end)")
        for j in args.jobs:
            for name, what, target in (("report", "", "<= 1.5x"), ("report, fresh kernels", ", fresh kernels", "comparison")):
                r = wall[name, j] / wall["floor", j]
                limit = ""
                if name == "report":   # what limits it: the templates' own cells, whatever the runner does around them
                    cells = cells_seconds(published[name, j])
                    limit = f"; limit: the templates' cells alone take {cells:.1f} s ({cells / wall['floor', j]:.2f}x the floor; profile in the output)"
                record("report_speed", f"full quarterly report{what} / floor of {len(templates)} empty templates (wall, jobs={j})", r, "x",
                       target, r <= 1.5 if target != "comparison" else None,
                       f"{wall[name, j]:.1f} s vs {wall['floor', j]:.1f} s; CPU {cpus[name, j]:.1f} vs {cpus['floor', j]:.1f} s "
                       f"({cpus[name, j] / cpus['floor', j]:.2f}x); empty templates through the runner {wall['floor, runner', j]:.1f} s "
                       f"(fresh kernels), {wall['floor, warm kernels', j]:.1f} s (warm)" + limit)
            r = wall["imports only", j] / wall["floor", j]
            record("report_speed", f"the templates' imports only, nothing run / floor of {len(templates)} empty templates (wall, jobs={j})", r, "x",
                   "comparison", None, f"{wall['imports only', j]:.1f} s vs {wall['floor', j]:.1f} s; CPU {cpus['imports only', j]:.1f} vs "
                   f"{cpus['floor', j]:.1f} s: loading what the analyses need, through the runner (warm kernels), with no analysis run")
            r = wall["imports + figures", j] / wall["floor", j]
            record("report_speed", f"lower bound: the templates' imports and their {n_figures} figures drawn, no analysis / floor (wall, jobs={j})",
                   r, "x", "comparison", None, f"{wall['imports + figures', j]:.1f} s vs {wall['floor', j]:.1f} s; CPU "
                   f"{cpus['imports + figures', j]:.1f} vs {cpus['floor', j]:.1f} s: the report's own figures (saved once, loaded with "
                   "cloudpickle, shown with show_figure) through the runner; no report with these pages can be faster"
                   + (" and it is above the 1.5x target" if r > 1.5 else ""))
            r = wall["report", j] / wall["floor, runner", j]
            record("report_speed", f"full quarterly report / the same empty templates through the runner (wall, jobs={j})", r, "x",
                   "comparison", None, f"{wall['report', j]:.1f} s vs {wall['floor, runner', j]:.1f} s (kernel='fresh'): the runner's "
                   "own steps (book read, snapshot, index, publish) counted on both sides")
            if args.against:
                name = f"report at {args.against}"
                r = wall["report", j] / wall[name, j]
                record("report_speed", f"full quarterly report / the same at {args.against} (wall, jobs={j})", r, "x", "comparison", None,
                       f"{wall['report', j]:.1f} s vs {wall[name, j]:.1f} s; CPU {cpus['report', j]:.1f} vs {cpus[name, j]:.1f} s "
                       f"({cpus['report', j] / cpus[name, j]:.2f}x)")

        print("\nwhere the time goes (seconds)")
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); from csbench.cli import _skip_iri_grammar; _skip_iri_grammar(); "
                            "import csbench.report; a = time.perf_counter(); "
                            "import papermill; b = time.perf_counter(); import nbconvert; print(a - t, b - a, time.perf_counter() - b)"],
                           capture_output=True, text=True, cwd=ROOT)
        imp = [float(x) for x in r.stdout.split()]
        book, t_read = timed(Book.read, cfg.data)
        fp, t_fp = timed(book.fingerprint)
        _, t_write = timed(_write_snapshot, book, tmp / "s" / _SNAPSHOT, cfg.data, fp)
        print(f"  runner, once: import csbench.cli + csbench.report {imp[0]:.2f}, papermill {imp[1]:.2f}, nbconvert {imp[2]:.2f} (in a new process); "
              f"read + validate the book {t_read:.2f}, fingerprint {t_fp:.2f}, write the snapshot {t_write:.2f}")
        j = args.jobs[0]
        exporter = _exporter(cfg.lang)
        _page(exporter, nbformat.read(next(published["floor, runner", j].glob("notebooks/*.ipynb")), as_version=4), title="", lang=cfg.lang, footer="")
        for name in ("report", "report, fresh kernels"):
            prov = json.loads((published[name, j] / "provenance.json").read_text())
            print(f"  {name} (jobs={j}, best run, {wall[name, j]:.2f} s in all; runner {prov['seconds']:.2f} s from reading the config "
                  "to publishing); each template:")
            print(f"    {'':28s}{'in all':>8s}{'cells':>8s}{'kernel':>8s}{'page':>8s}")
            for tp in prov["templates"]:
                nb = nbformat.read(published[name, j] / "notebooks" / f"{tp['name']}.ipynb", as_version=4)
                cells = sum(c.metadata.get("papermill", {}).get("duration") or 0 for c in nb.cells)
                _, t_page = timed(lambda: _page(exporter, nb, title=tp["title"], lang=cfg.lang, footer=""))
                print(f"    {tp['name']:28s}{tp['seconds']:8.2f}{cells:8.2f}{tp['seconds'] - cells:8.2f}{t_page:8.2f}")
            print("    (kernel: start or reset, and papermill around the cells; page: nbconvert to HTML, with an exporter already built)")
        if args.profile:
            print("  each template's cells in one plain Python process (CPU s; Agg backend, no kernel, no HTML):")
            for t in templates:
                r = subprocess.run([sys.executable, "-c", CELLS, str(t), params], capture_output=True, text=True,
                                   env={**os.environ, "MPLBACKEND": "Agg"})
                if r.returncode: print(f"    {t.stem}: failed: {r.stderr.strip().splitlines()[-1:]}"); continue
                res = json.loads(r.stdout.strip().splitlines()[-1])
                cells = res["cells"]
                print(f"    {t.stem}: {sum(c[1] for c in cells):.2f} CPU s in {len(cells)} cells (imports: the second, "
                      f"{cells[1][1]:.2f}); the largest:")
                for first, c, w in sorted(cells, key=lambda c: -c[1])[:4]: print(f"      {c:6.2f}  {first}")
                print("      in csbench functions (cumulative, profiled, after the imports): "
                      + ", ".join(f"{name} {s:.2f}" for s, name in res["functions"]))
    finally:
        if old.exists(): subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
