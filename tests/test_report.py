"""End to end: the quarterly report on the sample book, failing templates, keep_going, and atomic publishing."""
import json
import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from csbench.frames import account_frame
from csbench.labels import label
from csbench.report import ReportError, RunConfig, run_report
from csbench.schema import BookError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
CONFIG = ROOT / "reports" / "quarterly.yaml"


def write_template(folder: Path, name: str, *cells: str) -> Path:
    "A template notebook: the tagged parameters cell, then `cells`."
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    params = 'data = ""\nperiod = "2025Q4"\nas_of = ""\nlang = "en"\nout_dir = ""'
    nb.cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
    return folder / f"{name}.ipynb"


@pytest.fixture(scope="module")
def quarterly(tmp_path_factory):
    "reports/quarterly.yaml on the sample book, published into a temporary folder."
    cfg = replace(RunConfig.from_yaml(CONFIG), output=tmp_path_factory.mktemp("out"))
    return cfg, run_report(cfg, progress=False)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, small_book):
    "A small synthetic book on disk, for runs whose templates do not need the sample."
    return small_book.write(tmp_path_factory.mktemp("book") / "small", format="parquet")


@pytest.fixture
def tiny(tmp_path, small_data):
    "A run config with an ok template and a template that fails in its third cell."
    tdir = tmp_path / "templates"
    write_template(tdir, "10_ok", "from csbench.report import check_parameters, record_summary",
                   "p = check_parameters(data=data, period=period, as_of=as_of, lang=lang, out_dir=out_dir)\n"
                   "record_summary(p, title='Fine', headlines=[('Answer', 42, '42')])")
    write_template(tdir, "20_broken", "x = 1", "raise ValueError('the churn table is empty')")
    return RunConfig(name="tiny", data=small_data, period="2025Q4", templates=("10_ok",), templates_dir=tdir,
                     output=tmp_path / "out")


def test_quarterly_publishes_index_and_provenance(quarterly, sample_book):
    cfg, res = quarterly
    assert res.ok and res.path == cfg.output / "quarterly" / "2025Q4"
    pages = [f"{t}.html" for t in cfg.templates]
    assert sorted(p.name for p in res.path.iterdir()) == sorted(pages + ["index.html", "notebooks", "provenance.json", "sections"])
    assert sorted(p.name for p in res.path.parent.iterdir()) == ["2025Q4"]  # no build or old folders left
    prov = json.loads((res.path / "provenance.json").read_text())
    assert prov["data"]["fingerprint"] == sample_book.fingerprint()
    assert prov["parameters"] == {"data": str(SAMPLE), "period": "2025Q4", "as_of": "2025-12-31", "lang": "en"}
    assert prov["csbench_version"] and prov["git_commit"]
    assert [x["name"] for x in prov["templates"]] == list(cfg.templates) and all(x["status"] == "ok" for x in prov["templates"])
    t = prov["templates"][0]
    assert (t["name"], t["status"], t["error"]) == ("00_overview", "ok", None) and t["seconds"] > 0 and len(t["sha256"]) == 64
    started, finished = (datetime.fromisoformat(prov[k].replace("Z", "+00:00")) for k in ("started_at", "finished_at"))
    assert started <= finished
    index = res.index.read_text()
    assert 'href="00_overview.html"' in index and prov["data"]["fingerprint"][:16] in index and prov["git_commit"] in index
    assert all(h["text"] in index for h in res.sections[0].headlines)


def test_overview_headlines_match_the_book(quarterly, sample_book):
    _, res = quarterly
    af = account_frame(sample_book, "2025-12-31")
    got = {h["label"]: h["value"] for h in res.sections[0].headlines}
    assert got[label("accounts_total")] == len(af)
    assert got[label("accounts_active")] == (af.status == "active").sum()
    assert got[label("arr_at_as_of")] == pytest.approx(af.arr.sum())


def test_section_page_hides_code_and_embeds_the_figure(quarterly):
    _, res = quarterly
    page = (res.path / "00_overview.html").read_text()
    assert "account_frame(" not in page and "check_parameters(" not in page
    assert page.count('class="jp-RenderedImage') == 1 and 'src="data:image/png;base64,' in page
    assert 'href="index.html"' in page


def test_japanese_report(tmp_path):
    res = run_report(replace(RunConfig.from_yaml(CONFIG), output=tmp_path), lang="ja", period="2025Q3", progress=False)
    assert res.path == tmp_path / "quarterly" / "2025Q3"
    assert [h["label"] for h in res.sections[0].headlines] == [label(k, "ja") for k in ("accounts_total", "accounts_active", "arr_at_as_of")]
    assert '<html lang="ja">' in res.index.read_text() and label("overview", "ja") in res.index.read_text()
    assert json.loads((res.path / "provenance.json").read_text())["as_of"] == "2025-09-30"


def test_failing_template_names_template_and_cell_and_keeps_previous_report(tiny):
    good = run_report(tiny, progress=False)
    before = good.index.read_text()
    with pytest.raises(ReportError) as info:
        run_report(replace(tiny, templates=("10_ok", "20_broken")), progress=False)
    e = info.value
    assert (e.template, e.cell["index"]) == ("20_broken", 2)
    assert "'20_broken'" in str(e) and "cell 3" in str(e) and "ValueError: the churn table is empty" in str(e)
    failed = tiny.output / "tiny" / "2025Q4.failed"
    assert e.notebook == failed / "notebooks" / "20_broken.ipynb"
    nb = nbformat.read(e.notebook, as_version=4)
    assert any(o.output_type == "error" and o.evalue == "the churn table is empty" for c in nb.cells for o in c.get("outputs", []))
    assert "the churn table is empty" in (failed / "error.txt").read_text()
    assert good.index.read_text() == before
    assert sorted(p.name for p in (tiny.output / "tiny").iterdir()) == ["2025Q4", "2025Q4.failed"]


def test_keep_going_publishes_with_the_failure_marked(tiny):
    (tiny.output / "tiny" / "2025Q4.failed").mkdir(parents=True)  # stale, from an earlier failed run
    res = run_report(replace(tiny, templates=("20_broken", "10_ok")), keep_going=True, progress=False, jobs=2)
    assert (res.ok, res.failed) == (False, ["20_broken"])
    assert [s.name for s in res.sections] == ["20_broken", "10_ok"] and res.sections[1].headlines[0]["text"] == "42"
    index = res.index.read_text()
    assert label("section_failed") in index and "the churn table is empty" in index and 'href="20_broken.html"' in index
    assert [t["status"] for t in json.loads((res.path / "provenance.json").read_text())["templates"]] == ["failed", "ok"]
    assert sorted(p.name for p in (tiny.output / "tiny").iterdir()) == ["2025Q4"]


def test_republishing_replaces_the_report(tiny):
    first = run_report(tiny, progress=False)
    (first.path / "stale.txt").write_text("from the first run")
    second = run_report(replace(tiny, lang="ja"), progress=False)
    assert second.path == first.path and not (second.path / "stale.txt").exists()
    assert json.loads((second.path / "provenance.json").read_text())["lang"] == "ja"
    assert sorted(p.name for p in (tiny.output / "tiny").iterdir()) == ["2025Q4"]


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
    nbformat.write(nb, tiny.templates_dir / "30_untagged.ipynb")
    with pytest.raises(ReportError, match="no cell tagged 'parameters'"):
        run_report(replace(tiny, templates=("30_untagged",)), progress=False)
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


def test_period_past_the_data_is_flagged(tiny, small_book):
    last = small_book.coverage().last_date.max()
    res = run_report(tiny, period="2027Q4", progress=False)
    [w] = res.warnings
    assert "2027Q4" in w and "latest dated row" in w
    assert w in res.provenance["warnings"] and "latest dated row" in res.index.read_text()
    assert last < pd.Timestamp("2027-10-01")
