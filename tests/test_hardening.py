"""Hardening of `csbench report` (issue 11): hostile strings from the data, paths outside a run config's roots, a run
killed in the middle of a template, and the same outputs for the same inputs.

Every report here is made by the `csbench report` command on a small synthetic book (150 accounts, 24 months) whose
account names, industries, CSM names and book name are hostile."""
import csv
import hashlib
import html
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from typer.testing import CliRunner

from csbench.book import Book
from csbench.cli import app
from csbench.labels import to_csv_safe
from csbench.report import ReportError, RunConfig, run_report

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "notebooks" / "reports"
CSBENCH = Path(sys.executable).parent / "csbench"
HOSTILE = ['<script>alert(1)</script>', '=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3"]
BOOK_NAME = '<script>alert("book")</script>'
FORMULA = ("=", "+", "-", "@", "\t", "\r")
runner = CliRunner()


def cli(*args):
    "`csbench <args>` in this process: (exit code, stdout, stderr)."
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def hashes(folder: Path) -> dict:
    "sha256 of every file under `folder`, by relative path."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def project(folder: Path, config: str, name: str = "r.yaml") -> Path:
    "A project root (pyproject.toml) at `folder` with the run config `config` in it; the config's path."
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text("")
    (folder / name).write_text(config)
    return folder / name


@pytest.fixture(scope="module")
def hostile_book(small_book) -> Book:
    "The small book with a hostile name, and hostile account names, industries and CSM names."
    acc = small_book.accounts.assign(
        account_name=[HOSTILE[i % 5] + (f" #{i}" if i % 2 else "") for i in range(len(small_book.accounts))],
        industry=[HOSTILE[i % 5] for i in range(len(small_book.accounts))])
    csms = small_book.csms.assign(name=[HOSTILE[i % 5] for i in range(len(small_book.csms))])
    book = small_book.replace(accounts=acc, csms=csms)
    return Book(type(book.meta)(BOOK_NAME, book.meta.currency, book.meta.fiscal_year_start_month, book.meta.description),
                **book.tables)


WEEKLY = ("name: weekly\ndata: data/book\nperiod: 2024-12\ntemplates: [00_overview, 50_watch_list]\n"
          f"templates_dir: {TEMPLATES}\ndata_roots: [{TEMPLATES}]\noutput: out\n")


@pytest.fixture(scope="module")
def weekly(tmp_path_factory, hostile_book) -> Path:
    "The weekly watch list (with the overview) made by `csbench report` on the hostile book; the report folder."
    proj = tmp_path_factory.mktemp("weekly")
    hostile_book.write(proj / "data" / "book")
    code, out, err = cli("report", project(proj, WEEKLY), "--no-progress", "--jobs", 2)
    assert code == 0, err
    return Path(out.strip()).parent


# ---- hostile strings ---------------------------------------------------------------------------------------------

def test_hostile_strings_are_text_on_every_page(weekly):
    pages = sorted(weekly.glob("*.html"))
    assert [p.name for p in pages] == ["00_overview.html", "50_watch_list.html", "index.html"]
    for p in pages:
        page = p.read_text(encoding="utf-8")
        assert not re.search(r"<\s*script", page, flags=re.I), p.name            # no script tag at all, from the data or not
        assert not re.search(r"<[^>]+\son\w+\s*=", page, flags=re.I), p.name     # no event handler attribute
        assert "javascript:" not in page.lower() and not re.search(r"""href=["']?https?:""", page), p.name
        assert html.escape(BOOK_NAME, quote=False) in page or html.escape(BOOK_NAME) in page, p.name  # the book's name, as text
    watch = (weekly / "50_watch_list.html").read_text(encoding="utf-8")
    assert watch.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3                # names, industries and CSMs, shown as text
    for s in HOSTILE[1:]: assert html.escape(s, quote=False) in watch or html.escape(s) in watch, s
    assert '<a href="sections/50_watch_list/watch_list.csv">' in watch                # the export is linked from the page


def test_every_csv_the_report_writes_is_neutralised(weekly, hostile_book):
    files = sorted(weekly.rglob("*.csv"))
    assert [f.relative_to(weekly).as_posix() for f in files] == ["sections/50_watch_list/watch_list.csv"]
    cells = []
    for f in files:
        assert f.read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel reads Japanese right
        with f.open(encoding="utf-8-sig", newline="") as fh: cells += [c for row in csv.reader(fh) for c in row]
    for c in cells:
        if c.startswith(FORMULA):  # only a number may start with a sign: a negative amount is data, not a formula
            assert re.fullmatch(r"-?\d+(\.\d+)?(e[-+]?\d+)?", c), c
    names = set(hostile_book.accounts.account_name) | set(hostile_book.csms.name)
    listed = [c for c in cells if c.lstrip("'") in names]
    assert any(c.startswith("'=HYPERLINK") for c in listed) and any(c.startswith("'@SUM") for c in listed)
    assert all(c == "'" + c[1:] for c in listed if c[1:].startswith(FORMULA))
    n = next(h["value"] for t in json.loads((weekly / "provenance.json").read_text())["templates"] for h in t["headlines"]
             if h["key"] == "watch_list_accounts")
    assert len(pd.read_csv(files[0], encoding="utf-8-sig")) == n  # the whole list, not the page's top rows


def test_the_books_own_csv_stays_lossless(tmp_path, hostile_book):
    "Book.write is the data, not an export: hostile names come back exactly (the documented decision)."
    back = Book.read(hostile_book.write(tmp_path / "book"))
    assert back.accounts.account_name.tolist() == hostile_book.accounts.account_name.tolist()
    assert back.meta.name == BOOK_NAME


def test_to_csv_safe_neutralises_cells_and_column_names(tmp_path):
    df = pd.DataFrame({"=name": HOSTILE + ["\tx", "\rx", "Acme"], "arr": [-1.5, 0, 1, 2, 3, 4, 5, 6]})
    back = pd.read_csv(to_csv_safe(df, tmp_path / "x.csv"), encoding="utf-8-sig", keep_default_na=False)
    assert list(back.columns) == ["'=name", "arr"] and back.arr.tolist() == df.arr.tolist()
    assert back["'=name"].tolist() == [HOSTILE[0]] + ["'" + s for s in HOSTILE[1:]] + ["'\tx", "'\rx", "Acme"]


# ---- paths -------------------------------------------------------------------------------------------------------

@pytest.fixture
def roots(tmp_path, small_book):
    "A project with a small book and a folder beside it that no config names; a symlink in the project points there."
    proj, outside = tmp_path / "proj", tmp_path / "outside"
    small_book.write(proj / "data" / "book", format="parquet")
    outside.mkdir()
    (proj / "data" / "escape").symlink_to(outside, target_is_directory=True)
    (proj / "out").mkdir()
    return proj, outside


@pytest.mark.parametrize("key,value", [
    ("data", "../outside"), ("data", "{outside}"), ("data", "data/escape"),
    ("output", "../outside/out"), ("output", "/tmp"), ("output", "data/escape/out"),
    ("templates_dir", "../outside"), ("templates_dir", "data/escape"),
])
def test_config_paths_outside_their_roots_are_refused(roots, key, value):
    proj, outside = roots
    value = value.format(outside=outside)
    paths = {"data": "data/book", "output": "out", "templates_dir": str(TEMPLATES)} | {key: value}
    config = "name: q\nperiod: 2024Q4\ntemplates: [00_overview]\n" + "".join(f"{k}: {v}\n" for k, v in paths.items())
    config += f"data_roots: [{TEMPLATES}]\n" if key != "templates_dir" else ""
    code, out, err = cli("report", project(proj, config), "--no-progress")
    assert code == 1 and out == "" and err.startswith("Error: ") and "Traceback" not in err, err
    assert f"{key} {value!r}" in err and ("output_root" if key == "output" else "data_roots") in err, err
    assert os.path.realpath(proj / value) in err  # where it leads, with '..' and symlinks resolved
    assert not any(outside.iterdir()) and not any((proj / "out").iterdir())  # nothing read into, nothing written


def test_data_override_outside_the_roots_is_refused(roots):
    proj, outside = roots
    config = project(proj, f"name: q\ndata: data/book\nperiod: 2024Q4\ntemplates: [00_overview]\ntemplates_dir: {TEMPLATES}\n"
                           f"data_roots: [{TEMPLATES}]\noutput: out\n")
    code, _, err = cli("report", config, "--data", outside, "--no-progress")
    assert code == 1 and f"data '{outside}'" in err and "outside data_roots" in err, err
    code, _, err = cli("report", config, "--data", proj / "data" / "escape", "--no-progress")
    assert code == 1 and f"(resolved: {outside.resolve()})" in err, err  # through a symlink
    config.write_text(config.read_text().replace(f"data_roots: [{TEMPLATES}]", f"data_roots: [{TEMPLATES}, {outside}]"))
    code, _, err = cli("report", config, "--data", outside, "--no-progress")
    assert code == 1 and str(outside) in err and "data_roots" not in err, err  # a root named in the config is read (no book there)


def test_a_symlink_in_the_output_folder_is_not_written_through(roots, small_book):
    proj, outside = roots
    (proj / "out" / "q").symlink_to(outside, target_is_directory=True)
    cfg = RunConfig.from_yaml(project(proj, f"name: q\ndata: data/book\nperiod: 2024Q4\ntemplates: [00_overview]\n"
                                            f"templates_dir: {TEMPLATES}\ndata_roots: [{TEMPLATES}]\noutput: out\n"))
    with pytest.raises(ReportError, match="outside the output folder"): run_report(cfg, progress=False)
    assert not any(outside.iterdir())


# ---- interruption ------------------------------------------------------------------------------------------------

SLOW = ("from pathlib import Path\nimport time\n"
        "Path(out_dir).mkdir(parents=True, exist_ok=True)\n(Path(out_dir) / 'started').write_text('now')\ntime.sleep(120)")
OK = ("from csbench.report import check_parameters, record_summary\nimport pandas as pd\n"
      "p = check_parameters(data=data, period=period, as_of=as_of, lang=lang, out_dir=out_dir)\n"
      "b = p.read_book()\np.export_csv(b.accounts.head(20), 'accounts.csv')\n"
      "record_summary(p, title='Accounts', headlines=[('accounts', 'Accounts', len(b.accounts), f'{len(b.accounts):,}')])")


@pytest.fixture(scope="module")
def killable(tmp_path_factory, small_book):
    "A project whose report `kill` has a cheap template and one that signals it started, then sleeps; the first published."
    import nbformat
    proj = tmp_path_factory.mktemp("kill")
    small_book.write(proj / "data" / "book", format="parquet")
    for name, code in (("10_ok", OK), ("20_slow", SLOW)):
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
        nb.cells = [nbformat.v4.new_code_cell('data = ""\nperiod = ""\nas_of = ""\nlang = "en"\nout_dir = ""', metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(code)]
        (proj / "templates").mkdir(exist_ok=True)
        nbformat.write(nb, proj / "templates" / f"{name}.ipynb")
    base = "name: kill\ndata: data/book\nperiod: 2024Q4\ntemplates_dir: templates\noutput: out\n"
    good = project(proj, base + "templates: [10_ok]\n", "good.yaml")
    slow = project(proj, base + "templates: [10_ok, 20_slow]\n", "slow.yaml")
    code, out, err = cli("report", good, "--no-progress")
    assert code == 0, err
    return good, slow, Path(out.strip()).parent


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["SIGKILL", "SIGINT", "SIGTERM"])
def test_a_run_killed_mid_template_leaves_the_published_report_intact(killable, sig):
    good, slow, published = killable
    folder = published.parent
    before = hashes(published)
    assert "sections/10_ok/accounts.csv" in before and "index.html" in before
    # as from a terminal: a shell without job control starts background commands (CI, nohup ... &) with SIGINT ignored,
    # an ignored disposition survives exec, and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen([str(CSBENCH), "report", str(slow), "--no-progress", "--jobs", "2"], cwd=slow.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    kernels = []
    try:
        deadline = time.monotonic() + 60
        while not list(folder.glob(".2024Q4.build-*/sections/20_slow/started")):  # a template is executing
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        while not (kernels := psutil.Process(proc.pid).children(recursive=True)):  # the template's kernel, a process of its own
            assert proc.poll() is None and time.monotonic() < deadline, "no kernel process under the report run"
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None: proc.kill(); proc.wait()
    gone, alive = psutil.wait_procs(kernels, timeout=15)  # killed by the runner, or gone by themselves when it died
    for k in alive: k.kill()
    assert not alive, f"kernels left running after {sig.name}: {alive}"
    assert hashes(published) == before  # the last published report, byte for byte
    assert not [p for p in published.rglob("*") if p.name.startswith(".")]  # nothing staged inside it
    assert not (folder / "2024Q4.failed").exists()
    if sig != signal.SIGKILL:
        assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
        assert f"interrupted ({sig.name})" in err and "Traceback" not in err, err
        assert sorted(p.name for p in folder.iterdir()) == ["2024Q4"]  # an interrupted run cleans up after itself
        return
    assert proc.returncode == -signal.SIGKILL
    assert list(folder.glob(".2024Q4.build-*"))  # a killed run leaves its build behind (with its copy of the book) ...
    code, out, err = cli("report", good, "--no-progress")  # ... which the next run clears before it publishes
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["2024Q4"]
    after = hashes(published)
    assert after.keys() == before.keys() and after["sections/10_ok/accounts.csv"] == before["sections/10_ok/accounts.csv"]


# ---- determinism -------------------------------------------------------------------------------------------------

def visible_numbers(page: str) -> list[str]:
    "The numbers a reader sees on a page: text outside tags, styles, and the provenance footer (timestamps, durations)."
    page = re.sub(r'<footer class="csbench-provenance".*?</footer>', "", page, flags=re.S)
    page = re.sub(r"<(style|script)\b.*?</\1>", "", page, flags=re.S)
    page = re.sub(r'<p class="cmp">.*?</p>', "", page, flags=re.S)  # 'compared with the report of <date>'
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    return re.findall(r"[-+]?\d[\d,]*(?:\.\d+)?%?", text)


def outputs(folder: Path) -> dict:
    "What a report says: every CSV's bytes, every page's visible numbers, every section's headlines."
    prov = json.loads((folder / "provenance.json").read_text())
    return {"csv": {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*.csv"))},
            "numbers": {p.name: visible_numbers(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.html"))},
            "headlines": {t["name"]: t["headlines"] for t in prov["templates"]}, "fingerprint": prov["data"]["fingerprint"]}


def test_same_inputs_give_byte_identical_csvs_and_the_same_numbers(weekly, hostile_book, tmp_path):
    "The weekly report again, on the same book as CSV, and on the same book as a DuckDB file."
    first = outputs(weekly)
    assert first["csv"] and len(first["numbers"]["50_watch_list.html"]) > 100
    proj = weekly.parent.parent.parent
    hostile_book.write(proj / "data" / "book.duckdb", format="duckdb")
    for i, data in enumerate(["data/book", "data/book.duckdb"]):
        config = project(proj, WEEKLY.replace("data: data/book", f"data: {data}").replace("output: out", f"output: out{i}"),
                         f"again{i}.yaml")
        code, out, err = cli("report", config, "--no-progress", "--jobs", 2)
        assert code == 0, err
        again = outputs(Path(out.strip()).parent)
        assert again["csv"] == first["csv"], data  # byte for byte
        assert again["numbers"] == first["numbers"], data
        assert again["headlines"] == first["headlines"] and again["fingerprint"] == first["fingerprint"], data


def test_revenue_is_the_same_from_memory_and_from_parquet_in_duckdb(tmp_path, small_book):
    "mrr_movements on an in-memory Book and on the same book scanned in place by DuckDB; ARR agrees with account_frame."
    from csbench.engine import scan_book
    from csbench.frames import account_frame
    from csbench.revenue import mrr_movements
    lazy = scan_book(small_book.write(tmp_path / "book", format="parquet"))
    a = mrr_movements(small_book, as_of="2024-12-31", freq="Q", by="touch_model")
    b = mrr_movements(lazy, as_of="2024-12-31", freq="Q", by="touch_model")
    assert to_csv_safe(a, tmp_path / "a.csv").read_bytes() == to_csv_safe(b, tmp_path / "b.csv").read_bytes()
    end = mrr_movements(small_book, as_of="2024-12-31", freq="M").end_mrr.iloc[-1]
    assert 12 * end == pytest.approx(account_frame(small_book, "2024-12-31").arr.sum(), rel=1e-12)
