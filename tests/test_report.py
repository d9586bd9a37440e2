"""End to end: the quarterly report on the sample book for two quarters, in two languages, failing templates,
keep_going, atomic publishing, and the index's changes against the previous period."""
import atexit
import functools
import hashlib
import html
import json
import re
import shutil
import tempfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from csbench.frames import account_frame
from csbench.labels import label
from csbench.report import HEADLINE_KEYS, ReportError, RunConfig, find_templates, run_report
from csbench.schema import BookError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
CONFIG = ROOT / "reports" / "quarterly.yaml"
CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
NETWORK = re.compile(r"""(src|href)=["']?https?:|url\(["']?https?:""")


def write_template(folder: Path, name: str, *cells: str) -> Path:
    "A template notebook: the tagged parameters cell, then `cells`."
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    params = 'data = ""\nperiod = "2025Q4"\nas_of = ""\nlang = "en"\nout_dir = ""'
    nb.cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
    return folder / f"{name}.ipynb"


def hashes(folder: Path) -> dict:
    "sha256 of every file under `folder`, by relative path."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def headings(page: str, tag: str = "h1") -> list[str]:
    "The text of every <tag> of an HTML page (markup and nbconvert's ¶ anchors removed)."
    return [re.sub(r"<[^>]+>|¶", "", m).strip() for m in re.findall(rf"<{tag}[^>]*>(.*?)</{tag}>", page, flags=re.S)]


# The full quarterly report takes a while, so it is made once per session and shared with tests/test_browser.py
# (which imports these two functions; a fixture would be made again for each module). A failure is kept too, so a
# broken template fails every test that needs the report at once instead of running the report again for each.
def _once(f):
    @functools.cache
    def attempt():
        try: return True, f()
        except Exception as e: return False, e
    @functools.wraps(f)
    def wrapper():
        ok, value = attempt()
        if not ok: raise value
        return value
    return wrapper


@functools.cache
def _session_folder() -> Path:
    out = Path(tempfile.mkdtemp(prefix="csbench-quarterly-"))
    atexit.register(shutil.rmtree, out, True)
    return out


@_once
def english_quarters() -> tuple:
    "reports/quarterly.yaml on the sample book for 2025Q3 and then 2025Q4, published into one temporary folder."
    cfg = replace(RunConfig.from_yaml(CONFIG), output=_session_folder() / "en")
    q3 = run_report(cfg, period="2025Q3", progress=False)
    q4 = run_report(cfg, progress=False)
    return cfg, q3, q4


@_once
def japanese_quarter():
    "The same report for 2025Q3 in Japanese, in its own folder."
    return run_report(replace(RunConfig.from_yaml(CONFIG), output=_session_folder() / "ja"), lang="ja", period="2025Q3",
                      progress=False)


@pytest.fixture
def quarters(): return english_quarters()


@pytest.fixture
def japanese(): return japanese_quarter()


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, small_book):
    "A small synthetic book on disk, for runs whose templates do not need the sample."
    return small_book.write(tmp_path_factory.mktemp("book") / "small", format="parquet")


@pytest.fixture
def tiny(tmp_path, small_data):
    "A run config with an ok template (old-style headlines) and a template that fails in its third cell."
    tdir = tmp_path / "templates"
    write_template(tdir, "10_ok", "from csbench.report import check_parameters, record_summary",
                   "p = check_parameters(data=data, period=period, as_of=as_of, lang=lang, out_dir=out_dir)\n"
                   "record_summary(p, title='Fine', headlines=[('Answer', 42, '42')])")
    write_template(tdir, "20_broken", "x = 1", "raise ValueError('the churn table is empty')")
    write_template(tdir, "30_active", "from csbench.report import check_parameters, record_summary\n"
                   "from csbench.frames import account_frame\nfrom csbench.labels import label",
                   "p = check_parameters(data=data, period=period, as_of=as_of, lang=lang, out_dir=out_dir)\n"
                   "n = int((account_frame(p.read_book(), p.as_of).status == 'active').sum())\n"
                   "record_summary(p, title=label('overview', p.lang), headlines=[(label('accounts_active', p.lang), n, f'{n:,}')])")
    return RunConfig(name="tiny", data=small_data, period="2024Q4", templates=("10_ok",), templates_dir=tdir,
                     output=tmp_path / "out")


# --- the quarterly report on the sample book ----------------------------------------------------------------------

def test_quarterly_publishes_index_and_provenance(quarters, sample_book):
    cfg, _, res = quarters
    names = [t.stem for t in find_templates(cfg)]
    assert res.ok and res.path == cfg.output / "quarterly" / "2025Q4" and [s.name for s in res.sections] == names
    assert sorted(p.name for p in res.path.iterdir()) == sorted([f"{n}.html" for n in names] + ["index.html", "notebooks",
                                                                                              "provenance.json", "sections"])
    assert sorted(p.name for p in res.path.parent.iterdir()) == ["2025Q3", "2025Q4"]  # no build, old or snapshot folders left
    prov = json.loads((res.path / "provenance.json").read_text())
    assert prov["data"]["fingerprint"] == sample_book.fingerprint() and prov["data"]["currency"] == "JPY"
    assert prov["parameters"] == {"data": str(SAMPLE), "period": "2025Q4", "as_of": "2025-12-31", "lang": "en"}
    assert prov["csbench_version"] and prov["git_commit"] and prov["seconds"] > 0
    for t, name in zip(prov["templates"], names):
        assert (t["name"], t["status"], t["error"], t["page"]) == (name, "ok", None, f"{name}.html")
        assert t["seconds"] > 0 and len(t["sha256"]) == 64 and t["title"] and all("key" in h for h in t["headlines"])
    started, finished = (datetime.fromisoformat(prov[k].replace("Z", "+00:00")) for k in ("started_at", "finished_at"))
    assert started <= finished
    index = res.index.read_text()
    assert all(f'href="{n}.html"' in index for n in names)
    assert prov["data"]["fingerprint"][:16] in index and prov["git_commit"] in index and "JPY" in index
    assert all(h["text"] in index for s in res.sections for h in s.headlines)


def test_overview_headlines_match_the_book(quarters, sample_book):
    _, _, res = quarters
    af = account_frame(sample_book, "2025-12-31")
    got = {h["key"]: h["value"] for h in next(s for s in res.sections if s.name == "00_overview").headlines}
    assert got["accounts_total"] == len(af)
    assert got["accounts_active"] == (af.status == "active").sum()
    assert got["arr"] == pytest.approx(af.arr.sum())


def test_second_quarter_shows_changes_against_the_first(quarters):
    _, q3, q4 = quarters
    assert q4.provenance["previous"] | {"path": None, "finished_at": None, "fingerprint": None} == {
        "period": "2025Q3", "found": True, "comparable": True, "book": "synthetic", "lang": "en",
        "path": None, "finished_at": None, "fingerprint": None}
    before = {(s.name, h["key"]): h for s in q3.sections for h in s.headlines}
    index = q4.index.read_text()
    compared = 0
    for s in q4.sections:
        for h in s.headlines:
            old = before[(s.name, h["key"])]  # same templates, same language: every headline has last quarter's
            if old["value"] is None or h["value"] is None: continue
            assert h["previous"] == old["value"] and h["change"] == pytest.approx(h["value"] - old["value"])
            assert h["change_text"] in index
            compared += 1
    assert compared >= 3 and "vs 2025Q3" in index and "against the report for 2025Q3" in index
    overview = {h["key"]: h for h in q4.sections[0].headlines}
    assert overview["accounts_total"]["change_text"] == f'+{overview["accounts_total"]["change"]:,}'
    assert label("no_previous_report").format(period="2025Q2") in q3.index.read_text()
    assert "vs 2025Q2" not in q3.index.read_text()  # no column of changes without a previous report


def test_key_numbers_lead_the_index(quarters):
    _, _, res = quarters
    index = res.index.read_text()
    cards = re.findall(r'<div class="card" data-key="([^"]+)"', index)
    keys = [h["key"] for s in res.sections for h in s.headlines]
    canonical = lambda key: next((k for k in HEADLINE_KEYS if key == k or key.startswith((k + ".", k + "_"))), None)
    wanted = [k for k in HEADLINE_KEYS if any(canonical(x) == k for x in keys)]
    if wanted: assert [canonical(c) for c in cards] == wanted
    else: assert cards == [s.headlines[0]["key"] for s in res.sections if s.headlines]


def test_every_section_page_hides_code_embeds_figures_and_has_provenance(quarters):
    _, _, res = quarters
    prov = res.provenance
    for t in prov["templates"]:
        page = (res.path / t["page"]).read_text()
        assert "check_parameters(" not in page and "record_summary(" not in page, t["name"]
        assert not NETWORK.search(page), t["name"]  # self-contained: nothing fetched from the network
        imgs = re.findall(r"<img [^>]*>", page)
        assert all('src="data:image/png;base64,' in i and 'alt="' in i for i in imgs), t["name"]
        # each figure's alt text says which chart it is (templates show figures with show_figure), not the page's title
        [title] = re.findall(r"<title>(.*?)</title>", page, flags=re.S)
        alts = [html.unescape(a) for a in re.findall(r'<img alt="([^"]*)"', page)]
        assert alts and all(a.strip() and a != html.unescape(title).strip() for a in alts), (t["name"], alts, title)
        assert 'href="index.html"' in page
        [footer] = re.findall(r'<footer class="csbench-provenance".*?</footer>', page, flags=re.S)
        for needed in (prov["csbench_version"], prov["git_commit"], prov["data"]["fingerprint"][:16], "period=2025Q4",
                       "as_of=2025-12-31", "lang=en", t["sha256"][:12], "provenance.json"):
            assert needed in footer, (t["name"], needed)
    overview = (res.path / "00_overview.html").read_text()
    assert overview.count('class="jp-RenderedImage') == 1


def printed_to_stderr(folder: Path) -> dict:
    "What the executed templates of a published report printed to stderr (warnings, solver chatter), by template."
    return {f.stem: [o.text for c in nbformat.read(f, as_version=4).cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
            for f in sorted((folder / "notebooks").glob("*.ipynb"))}


def test_no_page_prints_warnings_or_solver_output(quarters, japanese):
    "Nothing reaches a page on stderr (warnings, solver chatter) in either quarter or in Japanese: the page says it in words."
    _, q3, q4 = quarters
    for res in (q3, q4, japanese):
        printed = printed_to_stderr(res.path)
        assert printed and not any(printed.values()), (res.path.name, printed)


def test_japanese_report_has_japanese_headings_in_every_section(japanese, quarters):
    res, (_, q3_en, _) = japanese, quarters
    assert res.path.name == "2025Q3" and res.provenance["as_of"] == "2025-09-30"
    index = res.index.read_text()
    assert '<html lang="ja">' in index
    for k in ("report_title", "headlines", "sections", "currency", "as_of"): assert label(k, "ja") in index, k
    assert label("no_previous_report", "ja").format(period="2025Q2") in index
    for s in res.sections:
        assert CJK.search(s.title), s.name  # every section title on the index
        page = (res.path / s.page).read_text()
        h1 = headings(page)
        assert h1 and all(CJK.search(h) for h in h1), (s.name, h1)
        assert '<html lang="ja">' in page and label("back_to_index", "ja") in page and label("data_fingerprint", "ja") in page
    overview = next(s for s in res.sections if s.name == "00_overview")
    assert [h["label"] for h in overview.headlines] == [label(k, "ja") for k in ("accounts_total", "accounts_active", "arr_at_as_of")]
    # NRR, GRR and logo churn are named with csbench labels, so their keys are the same in both languages and a
    # Japanese quarter compares with an English one (free-text labels need keys from their templates for that)
    cards = lambda r: [k for k in re.findall(r'<div class="card" data-key="([^"]+)"', r.index.read_text())
                       if k.split(".")[0] in ("nrr", "grr", "logo_churn")]
    assert cards(res) == cards(q3_en)


def test_template_forced_to_fail_leaves_the_published_report_byte_identical(quarters, tmp_path):
    cfg, _, q4 = quarters
    out = tmp_path / "out"
    shutil.copytree(cfg.output, out)
    tdir = tmp_path / "templates"
    shutil.copytree(cfg.templates_dir, tdir)
    write_template(tdir, "99_broken", "from csbench.report import check_parameters",
                   "p = check_parameters(data=data, period=period, as_of=as_of, lang=lang, out_dir=out_dir)",
                   "raise RuntimeError('forced failure')")
    published = out / "quarterly" / "2025Q4"
    before = hashes(published)
    assert len(before) > 5
    with pytest.raises(ReportError) as info:
        run_report(replace(cfg, output=out, templates_dir=tdir, templates=("00_overview", "99_broken")), progress=False, jobs=1)
    e = info.value
    assert (e.template, e.cell["index"]) == ("99_broken", 3) and "'99_broken'" in str(e) and "cell 4" in str(e)
    assert "RuntimeError: forced failure" in str(e) and str(published) in str(e)
    assert hashes(published) == before
    failed = out / "quarterly" / "2025Q4.failed"
    assert e.notebook == failed / "notebooks" / "99_broken.ipynb" and e.notebook.exists()
    assert "forced failure" in (failed / "error.txt").read_text() and not (failed / ".book").exists()
    assert sorted(p.name for p in (out / "quarterly").iterdir()) == ["2025Q3", "2025Q4", "2025Q4.failed"]


# --- small, fast runs -----------------------------------------------------------------------------------------------

def test_failing_template_names_template_and_cell_and_keeps_previous_report(tiny):
    good = run_report(tiny, progress=False)
    before = hashes(good.path)
    with pytest.raises(ReportError) as info:
        run_report(replace(tiny, templates=("10_ok", "20_broken")), progress=False)
    e = info.value
    assert (e.template, e.cell["index"]) == ("20_broken", 2)
    assert "'20_broken'" in str(e) and "cell 3" in str(e) and "ValueError: the churn table is empty" in str(e)
    failed = tiny.output / "tiny" / "2024Q4.failed"
    assert e.notebook == failed / "notebooks" / "20_broken.ipynb"
    nb = nbformat.read(e.notebook, as_version=4)
    assert any(o.output_type == "error" and o.evalue == "the churn table is empty" for c in nb.cells for o in c.get("outputs", []))
    assert "the churn table is empty" in (failed / "error.txt").read_text()
    assert hashes(good.path) == before
    assert sorted(p.name for p in (tiny.output / "tiny").iterdir()) == ["2024Q4", "2024Q4.failed"]


def test_keep_going_publishes_with_the_failure_marked(tiny):
    (tiny.output / "tiny" / "2024Q4.failed").mkdir(parents=True)  # stale, from an earlier failed run
    res = run_report(replace(tiny, templates=("20_broken", "10_ok")), keep_going=True, progress=False, jobs=2)
    assert (res.ok, res.failed) == (False, ["20_broken"])
    assert [s.name for s in res.sections] == ["20_broken", "10_ok"] and res.sections[1].headlines[0]["text"] == "42"
    index = res.index.read_text()
    assert label("section_failed") in index and "the churn table is empty" in index and 'href="20_broken.html"' in index
    assert [t["status"] for t in json.loads((res.path / "provenance.json").read_text())["templates"]] == ["failed", "ok"]
    assert sorted(p.name for p in (tiny.output / "tiny").iterdir()) == ["2024Q4"]
    assert 'class="csbench-provenance"' in (res.path / "20_broken.html").read_text()  # the failed page has its footer too


def test_old_style_headlines_get_a_key(tiny):
    res = run_report(tiny, progress=False)
    assert res.sections[0].headlines == [{"key": "answer", "label": "Answer", "value": 42, "text": "42", "unit": "count"}]


def test_changes_match_by_key_across_languages_and_templates_read_the_snapshot(tiny, small_book):
    cfg = replace(tiny, templates=("30_active",))
    q3 = run_report(cfg, period="2024Q3", lang="en", progress=False)
    q4 = run_report(cfg, period="2024Q4", lang="ja", progress=False)
    [h3], [h4] = q3.sections[0].headlines, q4.sections[0].headlines
    assert h3["key"] == h4["key"] == "accounts_active" and h4["label"] == label("accounts_active", "ja")
    for h, as_of in ((h3, "2024-09-30"), (h4, "2024-12-31")):
        assert h["value"] == (account_frame(small_book, as_of).status == "active").sum()
    assert h4["change"] == h4["value"] - h3["value"] and h4["change_text"] in q4.index.read_text()
    assert label("change_vs_previous", "ja").format(period="2024Q3") in q4.index.read_text()
    assert not any(p.name.startswith(".") for p in q4.path.rglob("*"))  # the snapshot is not published


def test_snapshot_is_what_the_runner_validated(tiny, small_book):
    write_template(tiny.templates_dir, "40_snapshot", "from csbench.report import check_parameters, record_summary, _read_snapshot, _SNAPSHOT",
                   "p = check_parameters(data=data, period=period, as_of=as_of, lang=lang, out_dir=out_dir)\n"
                   "assert _read_snapshot(p.out_dir.parent.parent / _SNAPSHOT, p.data) is not None\n"
                   "record_summary(p, title='t', headlines=[('fp', 'Fingerprint', 0, p.read_book().fingerprint())])")
    res = run_report(replace(tiny, templates=("40_snapshot",)), progress=False)
    assert res.sections[0].headlines[0]["text"] == small_book.fingerprint() == res.provenance["data"]["fingerprint"]


def test_previous_report_of_another_book_is_not_compared(tiny, small_data, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(small_data, other)
    (other / "book.yaml").write_text((other / "book.yaml").read_text().replace("name: ", "name: another ", 1))
    cfg = replace(tiny, templates=("10_ok",))
    run_report(cfg, period="2024Q3", data=other, progress=False)
    res = run_report(cfg, period="2024Q4", progress=False)
    assert res.provenance["previous"]["comparable"] is False and "change" not in res.sections[0].headlines[0]
    assert "of another book" in res.index.read_text()


def test_republishing_replaces_the_report(tiny):
    first = run_report(tiny, progress=False)
    (first.path / "stale.txt").write_text("from the first run")
    second = run_report(replace(tiny, lang="ja"), progress=False)
    assert second.path == first.path and not (second.path / "stale.txt").exists()
    assert json.loads((second.path / "provenance.json").read_text())["lang"] == "ja"
    assert sorted(p.name for p in (tiny.output / "tiny").iterdir()) == ["2024Q4"]


def test_broken_book_stops_before_anything_runs(tiny, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(SAMPLE, bad)
    (bad / "accounts.csv").write_text((bad / "accounts.csv").read_text().replace(",direct,", ",carrier_pigeon,", 1))
    with pytest.raises(BookError, match="accounts.*channel"):
        run_report(tiny, data=bad, progress=False)
    assert not tiny.output.exists()


def test_templates_without_parameters_tag_or_missing_are_refused(tiny):
    nb = nbformat.read(tiny.templates_dir / "10_ok.ipynb", as_version=4)
    nb.cells[0].metadata = {}
    nbformat.write(nb, tiny.templates_dir / "35_untagged.ipynb")
    with pytest.raises(ReportError, match="no cell tagged 'parameters'"):
        run_report(replace(tiny, templates=("35_untagged",)), progress=False)
    with pytest.raises(ReportError, match="99_missing.*10_ok, 20_broken"):
        run_report(replace(tiny, templates=("99_missing",)), progress=False)
    assert not tiny.output.exists()


def test_run_config_paths_are_relative_to_the_project_root(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "q.yaml").write_text("name: q\ndata: data/book\nperiod: 2024-06\n")
    cfg = RunConfig.from_yaml(tmp_path / "reports" / "q.yaml")
    assert (cfg.data, cfg.templates_dir, cfg.output) == (tmp_path / "data/book", tmp_path / "notebooks/reports", tmp_path / "reports/out")
    assert cfg.period == "2024-06"


def test_period_outside_the_data_is_refused_before_anything_runs(tiny, small_book):
    subs = small_book.subscriptions
    first, last = subs.start_date.min(), small_book.coverage().last_date.max()
    assert (first, last) == (pd.Timestamp("2023-01-08"), pd.Timestamp("2024-12-31"))
    ahead = subs.end_date[(subs.end_date > last) & subs.end_reason.isna()].sort_values()   # terms the book cannot see renewed
    assert ahead.iloc[0] == pd.Timestamp("2025-01-02") and (ahead <= "2025-01-31").sum() == 6
    res = run_report(tiny, period="2025Q1", as_of="2025-01-01", progress=False)   # past the last row, before any such term ends
    assert res.ok and res.warnings == []
    before = sorted(p.name for p in (tiny.output / "tiny").iterdir())
    with pytest.raises(ReportError, match=r"Period 2025Q1 \(as of 2025-01-31\) ends 31 days after the latest dated row .* "
                                          r"\(2024-12-31\), and 6 contract terms are scheduled to end in between.* on or before 2025-01-01"):
        run_report(tiny, period="2025Q1", as_of="2025-01-31", progress=False)
    with pytest.raises(ReportError, match=r"ends before the first contract in the book .* \(2023-01-08\).* on or after 2023-01-08"):
        run_report(tiny, period="2022Q4", progress=False)
    assert sorted(p.name for p in (tiny.output / "tiny").iterdir()) == before       # nothing published, nothing left behind


# --- warm kernels (the default) and fresh ones ----------------------------------------------------------------------

RUN_TO_RUN = re.compile(r"0x[0-9a-f]+|ipykernel_\d+|T_[0-9a-f]{5}")  # differs run to run: addresses, the kernel's pid, Styler ids


def report_outputs(folder: Path) -> dict:
    "What a published report says, run to run: CSV bytes, headlines, and every executed notebook's outputs and counts."
    prov = json.loads((folder / "provenance.json").read_text())
    def cells(nb):
        return [(c.execution_count, RUN_TO_RUN.sub("*", json.dumps([{k: v for k, v in o.items() if k != "execution_count"}
                                                                     for o in c.outputs], sort_keys=True)))
                for c in nb.cells if c.cell_type == "code"]
    return {"csv": {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*.csv"))},
            "headlines": {t["name"]: t["headlines"] for t in prov["templates"]},
            "notebooks": {f.stem: cells(nbformat.read(f, as_version=4)) for f in sorted((folder / "notebooks").glob("*.ipynb"))}}


def test_warm_and_fresh_kernels_give_the_same_report(tmp_path, small_data):
    "Two real templates in one warm kernel (the churn drivers set a global warning filter) and each in a fresh one."
    cfg = RunConfig(name="same", data=small_data, period="2024Q4", templates=("20_churn_drivers", "50_watch_list"),
                    templates_dir=ROOT / "notebooks" / "reports", output=tmp_path / "warm")
    warm = run_report(replace(cfg, kernel="warm"), progress=False, jobs=1)
    a = report_outputs(warm.path)
    fresh = run_report(replace(cfg, kernel="fresh", output=tmp_path / "fresh"), progress=False, jobs=2)
    b = report_outputs(fresh.path)
    assert a["csv"] and a["csv"] == b["csv"]  # byte for byte
    assert a["headlines"] == b["headlines"] and a["headlines"]["50_watch_list"]
    for name, cells in a["notebooks"].items():  # every output, figures included, and execution counts from 1
        differ = [(i, x, y) for i, (x, y) in enumerate(zip(cells, b["notebooks"][name])) if x != y]
        assert not differ and len(cells) == len(b["notebooks"][name]), f"{name}: first differing code cell {differ[0][0]}:\n{differ[0][1]}\n!=\n{differ[0][2]}"
    assert [c for c, _ in a["notebooks"]["50_watch_list"]][:3] == [1, 2, 3]
    printed = printed_to_stderr(warm.path)
    assert printed and not any(printed.values()), printed   # no warning leaks onto a page
    page = (warm.path / "20_churn_drivers.html").read_text(encoding="utf-8")
    assert "converged only with a ridge penalty (0.1)" in page   # the small book's past Cox fits: said in words instead


def test_printed_lines_are_one_output_however_the_kernel_flushed_them(tmp_path, small_data):
    "Lines printed apart in time (the kernel flushes every 0.2 s) make one output per stream: the same page run to run."
    tdir = tmp_path / "templates"
    write_template(tdir, "10_prints", "import sys, time\nprint('a', flush=True)\ntime.sleep(0.5)\nprint('b', flush=True)\n"
                   "print('c', file=sys.stderr, flush=True)\ntime.sleep(0.5)\nprint('d', file=sys.stderr, flush=True)")
    cfg = RunConfig(name="prints", data=small_data, period="2024Q4", templates_dir=tdir, output=tmp_path / "out")
    for kernel in ("warm", "fresh"):
        res = run_report(replace(cfg, kernel=kernel), progress=False, jobs=1)
        outs = nbformat.read(res.path / "notebooks" / "10_prints.ipynb", as_version=4).cells[-1].outputs
        assert [(o.name, o.text) for o in outs] == [("stdout", "a\nb\n"), ("stderr", "c\nd\n")], kernel


SETS = ("secret = 42\nimport os, sys, warnings, matplotlib, matplotlib.pyplot as plt, pandas as pd\n"
        "matplotlib.rcParams['lines.linewidth'] = 9\npd.set_option('display.max_rows', 3)\n"
        "warnings.filterwarnings('ignore', message='csbench test')\nos.chdir(os.path.expanduser('~'))\nsys.path.append('/nowhere')\n"
        "fig = plt.figure()")
LOOKS = ("import os, sys, warnings, matplotlib, matplotlib.pyplot as plt, pandas as pd\n"
         "print('secret' in globals(), matplotlib.rcParams['lines.linewidth'], pd.get_option('display.max_rows'), plt.get_fignums(),\n"
         "      os.path.basename(os.getcwd()), '/nowhere' in sys.path, len(warnings.filters), os.getpid())\n"
         "warnings.warn('csbench test')")


def test_warm_kernel_gives_each_template_a_fresh_state(tmp_path, small_data):
    "What a template sets (a variable, rcParams, a pandas option, a warning filter, the folder, sys.path, a figure) is gone for the next."
    tdir = tmp_path / "templates"
    write_template(tdir, "10_sets", SETS, "print(os.getpid())")
    write_template(tdir, "20_looks", LOOKS)
    cfg = RunConfig(name="iso", data=small_data, period="2024Q4", templates_dir=tdir, output=tmp_path / "out")
    seen = {}
    for kernel in ("warm", "fresh"):
        res = run_report(cfg, kernel=kernel, progress=False, jobs=1)
        nbs = {n: nbformat.read(res.path / "notebooks" / f"{n}.ipynb", as_version=4) for n in ("10_sets", "20_looks")}
        pid_sets = int(nbs["10_sets"].cells[-1].outputs[0].text)
        [out, warning] = nbs["20_looks"].cells[-1].outputs
        *state, pid_looks = out.text.split()
        seen[kernel] = state, RUN_TO_RUN.sub("*", warning.text), (pid_sets == int(pid_looks))
    assert seen["warm"][0][:6] == ["False", "1.5", "60", "[]", "templates", "False"]  # matplotlib's and pandas' defaults
    assert seen["warm"][:2] == seen["fresh"][:2]  # the same filters, and the filtered warning shows again
    assert seen["warm"][1] == "UserWarning: csbench test\n"  # no file, line or source: no paths of the machine on a page
    assert (seen["warm"][2], seen["fresh"][2]) == (True, False)  # one kernel for both templates, and one each


def test_warm_kernel_is_replaced_after_a_failure_and_keep_going_runs_the_next(tmp_path, small_data):
    tdir = tmp_path / "templates"
    pid = "import os\nprint(os.getpid())"
    write_template(tdir, "10_ok", "x = 'from 10'", pid)
    write_template(tdir, "20_broken", pid, "raise ValueError('the churn table is empty')")
    write_template(tdir, "30_next", pid, "print('x' in globals())")
    cfg = RunConfig(name="warm", data=small_data, period="2024Q4", templates_dir=tdir, output=tmp_path / "out")
    res = run_report(cfg, keep_going=True, progress=False, jobs=1)
    assert (res.failed, [s.name for s in res.sections]) == (["20_broken"], ["10_ok", "20_broken", "30_next"])
    assert "cell 3" in res.sections[1].error and "ValueError: the churn table is empty" in res.sections[1].error
    out = {n: nbformat.read(res.path / "notebooks" / f"{n}.ipynb", as_version=4) for n in ("10_ok", "20_broken", "30_next")}
    printed = {n: [o.text.strip() for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream"] for n, nb in out.items()}
    pids = {n: int(p[0]) for n, p in printed.items()}
    assert pids["10_ok"] == pids["20_broken"] != pids["30_next"]  # the failed template's kernel is not used again
    assert printed["30_next"][1] == "False"
    import psutil
    assert not psutil.Process().children(recursive=True)  # every kernel has been stopped


def test_warm_kernel_imports_what_the_templates_import_before_they_run(tmp_path, small_data):
    "The kernel imports the templates' modules (and csbench's lazy ones when a template uses csbench) while the book is read."
    from csbench.report import _LAZY_IMPORTS, _template_imports
    tdir = tmp_path / "templates"
    plain = write_template(tdir, "10_plain", "import json, os.path as osp\nfrom textwrap import dedent\n%matplotlib inline",
                           "def f():\n    import colorsys\n    from . import nothing  # relative: left out\n    return colorsys")
    assert _template_imports([plain]) == ["json", "os.path", "textwrap", "colorsys"]  # the magic's cell is skipped
    uses = write_template(tdir, "20_uses", "from csbench.revenue import mrr_movements",
                          "import module_that_is_not_installed  # fails in its own cell, not before")
    assert _template_imports([plain, uses]) == ["json", "os.path", "textwrap", "colorsys", "csbench.revenue",
                                                "module_that_is_not_installed", *_LAZY_IMPORTS]
    write_template(tdir, "30_looks", "import sys\nprint(sorted(m for m in ('colorsys', 'csbench.revenue', 'lifelines') if m in sys.modules))")
    cfg = RunConfig(name="pre", data=small_data, period="2024Q4", templates_dir=tdir, output=tmp_path / "out",
                    templates=("10_plain", "30_looks"))
    res = run_report(cfg, progress=False, jobs=1)
    looks = nbformat.read(res.path / "notebooks" / "30_looks.ipynb", as_version=4).cells[-1].outputs[0].text
    assert looks.strip() == "['colorsys']"   # only what these templates import: no csbench, so none of its lazy imports
    res = run_report(replace(cfg, templates=("20_uses", "30_looks")), progress=False, jobs=1, keep_going=True)
    assert res.failed == ["20_uses"] and "ModuleNotFoundError: No module named 'module_that_is_not_installed'" in res.sections[0].error
    looks = nbformat.read(res.path / "notebooks" / "30_looks.ipynb", as_version=4).cells[-1].outputs[0].text
    assert {"csbench.revenue", "lifelines"} <= set(eval(looks))


def test_run_config_as_of(tmp_path):
    "as_of: a date inside the period, ISO; bounds() gives (period start, as_of); a YAML key like the others."
    cfg = RunConfig(name="q", data=tmp_path, period="2026q1", as_of="2026-02-15")
    assert (cfg.as_of, cfg.bounds()) == ("2026-02-15", (pd.Timestamp("2026-01-01"), pd.Timestamp("2026-02-15")))
    assert RunConfig(name="q", data=tmp_path, period="2026Q1").bounds()[1] == pd.Timestamp("2026-03-31")
    assert RunConfig(name="q", data=tmp_path, period="2026Q1", as_of="").as_of is None
    for bad, msg in [("2026-04-01", "lies outside period 2026Q1 (2026-01-01 to 2026-03-31)"), ("2026-02-30", "must be a date"),
                     ("2026-02-15 10:30", "must be a date"), ("soon", "must be a date like '2026-03-31'")]:
        with pytest.raises(ReportError, match=re.escape(msg)): RunConfig(name="q", data=tmp_path, period="2026Q1", as_of=bad)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "r.yaml").write_text("name: r\ndata: book\nperiod: 2026Q1\nas_of: 2026-02-15\n")
    assert RunConfig.from_yaml(tmp_path / "r.yaml").as_of == "2026-02-15"   # YAML reads the date as a date


def test_kernel_is_warm_or_fresh(tiny, tmp_path):
    with pytest.raises(ReportError, match="kernel must be one of warm, fresh; got 'hot'"):
        replace(tiny, kernel="hot")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "r.yaml").write_text("name: r\ndata: book\nperiod: 2025Q4\nkernel: fresh\n")
    assert RunConfig.from_yaml(tmp_path / "r.yaml").kernel == "fresh" and RunConfig.from_yaml(CONFIG).kernel == "warm"


@pytest.mark.slow
def test_quarterly_in_fresh_kernels_is_the_same_report(quarters, tmp_path):
    "The whole quarterly report for 2025Q4 in fresh kernels, against the session's (warm kernels, the default)."
    cfg, q3, q4 = quarters
    out = tmp_path / "out"
    shutil.copytree(q3.path, out / cfg.name / "2025Q3")  # the same previous report to compare with
    fresh = run_report(replace(cfg, output=out), kernel="fresh", progress=False)
    a, b = report_outputs(q4.path), report_outputs(fresh.path)
    assert len(a["csv"]) >= 2 and a["csv"] == b["csv"]
    assert a["headlines"] == b["headlines"] and a["notebooks"] == b["notebooks"]


def test_churn_and_health_pages_on_an_account_snapshot_export(tmp_path):
    "A one-row-per-account export, with the user's own industry names and no history: the churn page falls back to the Cox "
    "forecast and says why; the health page fails with the reason and what to do, not a model's error."
    import numpy as np
    from csbench.book import from_account_snapshot
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"id": [f"C{i}" for i in range(n)], "tenure": rng.integers(0, 48, n), "churn": rng.random(n) < 0.25,
                       "mrr": rng.integers(100, 5000, n), "industry": rng.choice(["fintech", "media", "logistics"], n)})
    data = from_account_snapshot(df, as_of="2025-12-31", tenure="tenure", churned="churn", mrr="mrr", account_id="id",
                                 currency="USD").write(tmp_path / "snapshot", format="parquet")
    base = RunConfig.from_yaml(CONFIG)
    cfg = replace(base, name="snapshot", data=data, period="2025Q4", output=tmp_path / "out",
                  templates=("20_churn_drivers", "30_health_calibration"))
    res = run_report(cfg, keep_going=True, progress=False, jobs=1)
    assert res.failed == ["30_health_calibration"]
    assert "ReportError: The health page learns its weights from month-end history" in res.sections[1].error
    assert "0 churns" in res.sections[1].error and "--keep-going" in res.sections[1].error
    churn = html.unescape(re.sub(r"<[^>]+>", " ", (res.path / "20_churn_drivers.html").read_text()))
    assert "The forecast from current signals cannot be made on this book" in churn and "uses the attributes at signing" in churn
    [h] = [h for h in res.sections[0].headlines if h["key"].startswith("arr_at_risk_next_quarter")]
    assert h["key"] == "arr_at_risk_next_quarter" and h["value"] > 0      # the Cox forecast's key: comparable with earlier reports
