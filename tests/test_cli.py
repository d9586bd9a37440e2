"""The csbench command: help, validate, synth and report, with clean errors and exit codes."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from typer.testing import CliRunner

from csbench.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_error(r, *words):
    "Exit 1, one 'Error:' message on stderr naming `words`, no traceback."
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith("Error: ") and "Traceback" not in r.output, r.output
    for w in words: assert w in r.stderr, (w, r.stderr)


def test_help_lists_the_commands():
    r = invoke("--help")
    assert r.exit_code == 0
    for cmd in ("report", "validate", "synth", "teach"): assert cmd in r.stdout
    for cmd in ("report", "validate", "synth"): assert invoke(cmd, "--help").exit_code == 0


def test_entry_point_is_installed():
    exe = Path(sys.executable).parent / "csbench"
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("csbench ")


def test_validate_summarises_the_sample():
    r = invoke("validate", SAMPLE)
    assert r.exit_code == 0, r.output
    assert "is valid" in r.stdout and "2,000" in r.stdout and "2023-01-01" in r.stdout


@pytest.mark.parametrize("table,column,edit", [
    ("subscriptions", "mrr", lambda df: df.assign(mrr=df.mrr.where(df.index != 3, -100))),
    ("accounts", "created_at", lambda df: df.assign(created_at=df.created_at.where(df.index != 5, "31/12/2024"))),
    ("tickets", "priority", lambda df: df.drop(columns="priority")),
])
def test_validate_broken_book_names_table_and_column(tmp_path, table, column, edit):
    bad = tmp_path / "bad"
    shutil.copytree(SAMPLE, bad)
    edit(pd.read_csv(bad / f"{table}.csv", dtype=str)).to_csv(bad / f"{table}.csv", index=False)
    assert_clean_error(invoke("validate", bad), table, column)


def test_validate_missing_book():
    assert_clean_error(invoke("validate", ROOT / "no" / "book"), "No book at")


def test_synth_writes_a_book_that_validates(tmp_path):
    r = invoke("synth", tmp_path / "small", "--accounts", 40, "--months", 12, "--seed", 1, "--currency", "USD", "--format", "parquet")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "small" / "accounts.parquet").exists()
    r = invoke("validate", tmp_path / "small")
    assert r.exit_code == 0 and "(USD)" in r.stdout


def test_synth_rejects_an_unknown_format(tmp_path):
    r = invoke("synth", tmp_path / "x", "--format", "xlsx")
    assert r.exit_code == 2 and "csv" in r.output


@pytest.fixture
def config(tmp_path, small_book):
    "A run config with one tiny template, on a small book; `20_fails` sits beside it."
    small_book.write(tmp_path / "book.duckdb", format="duckdb")
    active = ("from csbench.report import check_parameters, record_summary\nfrom csbench.frames import account_frame\n"
              "p = check_parameters(data=data, period=period, as_of=as_of, lang=lang, out_dir=out_dir)\n"
              "n = int((account_frame(p.read_book(), p.as_of).status == 'active').sum())\n"
              "record_summary(p, title='Accounts', headlines=[('accounts_active', 'Active accounts', n, f'{n:,}')])")
    for name, code in [("10_ok", "print(period, as_of, lang)"), ("20_fails", "x = 1\n1 / 0"), ("30_active", active)]:
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
        nb.cells = [nbformat.v4.new_code_cell('data = ""\nperiod = ""\nas_of = ""\nlang = "en"\nout_dir = ""',
                                              metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(code)]
        (tmp_path / "templates").mkdir(exist_ok=True)
        nbformat.write(nb, tmp_path / "templates" / f"{name}.ipynb")
    (tmp_path / "pyproject.toml").write_text("")
    path = tmp_path / "r.yaml"
    path.write_text("name: cli\ndata: book.duckdb\nperiod: 2024Q4\ntemplates: [10_ok]\ntemplates_dir: templates\noutput: out\n")
    return path


def test_report_prints_the_index(config):
    r = invoke("report", config, "--lang", "ja", "--period", "2024Q3", "--no-progress")
    assert r.exit_code == 0, r.output
    index = Path(r.stdout.strip())
    assert index == config.parent / "out" / "cli" / "2024Q3" / "index.html" and index.exists()
    prov = json.loads((index.parent / "provenance.json").read_text())
    assert (prov["lang"], prov["as_of"]) == ("ja", "2024-09-30")


def test_report_kernel_option(config):
    r = invoke("report", config, "--kernel", "fresh", "--no-progress")
    assert r.exit_code == 0, r.output
    prov = json.loads((Path(r.stdout.strip()).parent / "provenance.json").read_text())
    assert prov["kernel"] == "fresh"
    bad = invoke("report", config, "--kernel", "tepid")
    assert bad.exit_code == 2 and "tepid" in bad.output


def test_report_bad_period_and_bad_config(config):
    assert_clean_error(invoke("report", config, "--period", "2024Q5"), "period must be", "2024Q5")
    assert_clean_error(invoke("report", config.parent / "nope.yaml"), "No run config at")
    config.write_text(config.read_text() + "language: ja\n")
    assert_clean_error(invoke("report", config), "unknown key(s) language")


def test_report_as_of_option(config):
    "--as-of: a day inside the period (quarter to date); the template gets it and the provenance records it."
    r = invoke("report", config, "--as-of", "2024-11-15", "--no-progress")
    assert r.exit_code == 0, r.output
    index = Path(r.stdout.strip())
    prov = json.loads((index.parent / "provenance.json").read_text())
    assert (prov["period"], prov["as_of"], prov["parameters"]["as_of"]) == ("2024Q4", "2024-11-15", "2024-11-15")
    nb = nbformat.read(index.parent / "notebooks" / "10_ok.ipynb", as_version=4)
    assert nb.cells[-1].outputs[0].text.split() == ["2024Q4", "2024-11-15", "en"]
    assert_clean_error(invoke("report", config, "--as-of", "2025-01-15"), "as_of 2025-01-15 lies outside period 2024Q4")
    assert_clean_error(invoke("report", config, "--as-of", "15/11/2024x"), "as_of must be a date like '2024-12-31'")
    config.write_text(config.read_text() + "as_of: 2024-12-01\n")   # in the YAML; another --period drops it
    r = invoke("report", config, "--period", "2024Q3", "--no-progress")
    assert r.exit_code == 0, r.output
    assert json.loads((Path(r.stdout.strip()).parent / "provenance.json").read_text())["as_of"] == "2024-09-30"


def hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_report_failing_template(config):
    assert invoke("report", config).exit_code == 0
    published = config.parent / "out" / "cli" / "2024Q4"
    before = hashes(published)
    config.write_text(config.read_text().replace("[10_ok]", "[10_ok, 20_fails]"))
    r = invoke("report", config)
    assert_clean_error(r, "'20_fails'", "cell 2", "ZeroDivisionError", "unchanged")
    assert r.stdout == ""
    assert hashes(published) == before  # the last good report, byte for byte
    assert (config.parent / "out" / "cli" / "2024Q4.failed" / "notebooks" / "20_fails.ipynb").exists()


def test_two_consecutive_quarters_one_command_each(config, small_book):
    from csbench.frames import account_frame
    config.write_text(config.read_text().replace("[10_ok]", "[10_ok, 30_active]"))
    r3, r4 = invoke("report", config, "--period", "2024Q3"), invoke("report", config, "--period", "2024Q4")
    assert r3.exit_code == 0 and r4.exit_code == 0, (r3.output, r4.output)
    q3, q4 = Path(r3.stdout.strip()), Path(r4.stdout.strip())
    assert (q3.parent.name, q4.parent.name) == ("2024Q3", "2024Q4")
    n3, n4 = ((account_frame(small_book, d).status == "active").sum() for d in ("2024-09-30", "2024-12-31"))
    assert "No previous report (2024Q2)" in q3.read_text()
    index = q4.read_text()
    assert "against the report for 2024Q3" in index and f"{n4:,}" in index
    assert (f"+{n4 - n3:,}" if n4 > n3 else f"-{n3 - n4:,}" if n4 < n3 else "±0") in index
    [t] = [t for t in json.loads((q4.parent / "provenance.json").read_text())["templates"] if t["name"] == "30_active"]
    assert t["headlines"][0]["previous"] == n3 and t["headlines"][0]["change"] == n4 - n3


def test_report_keep_going_prints_the_index_and_exits_1(config):
    config.write_text(config.read_text().replace("[10_ok]", "[10_ok, 20_fails]"))
    r = invoke("report", config, "--keep-going")
    assert r.exit_code == 1
    assert Path(r.stdout.strip()).exists() and "20_fails" in r.stderr


def test_report_broken_book(config, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(SAMPLE, bad)
    subs = pd.read_csv(bad / "subscriptions.csv", dtype=str)
    subs.loc[0, "billing"] = "weekly"
    subs.to_csv(bad / "subscriptions.csv", index=False)
    assert_clean_error(invoke("report", config, "--data", bad), "subscriptions", "billing")


def test_teach_export_writes_student_versions_and_keys(tmp_path):
    from csbench.teach import is_solution
    import nbformat
    src = ROOT / "notebooks" / "teach"
    n = len(list(src.glob("*.ipynb")))
    r = invoke("teach", "export", src, tmp_path / "student", "--answer-key", tmp_path / "key")
    assert r.exit_code == 0, r.output
    assert f"wrote {n} student notebook(s)" in r.stdout
    for p in (tmp_path / "student").glob("*.ipynb"):
        assert not any(is_solution(c) for c in nbformat.read(p, as_version=4).cells), p.name
    assert len(list((tmp_path / "key").glob("*.md"))) == n
    bad = invoke("teach", "export", tmp_path / "nowhere", tmp_path / "s2")
    assert bad.exit_code == 1 and "no folder" in bad.stderr and "Traceback" not in bad.output


SKIP_IRI = r"""
import sys
pre = sys.argv[1] == "pre"
if pre: import jsonschema._format  # already loaded: the guard must leave the process alone
from csbench.cli import _skip_iri_grammar
_skip_iri_grammar()
import papermill, nbformat
from jsonschema import FormatChecker
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
nbformat.validate(nb)  # notebook validation works without the IRI grammars
print(sys.modules.get("rfc3987_syntax", "absent") is None, "iri" in FormatChecker.checkers, "email" in FormatChecker.checkers)
"""


def test_report_command_skips_the_iri_grammars_only_before_jsonschema_loads():
    "`csbench report` does not pay rfc3987-syntax's grammar compile (jsonschema#1428); other format checks stay."
    installed = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(bool(u.find_spec('rfc3987_syntax')))"],
                               capture_output=True, text=True).stdout.strip() == "True"
    fresh = subprocess.run([sys.executable, "-c", SKIP_IRI, "fresh"], capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.split() == ["True", "False", "True"]  # blocked; no IRI checker; the email checker is still there
    pre = subprocess.run([sys.executable, "-c", SKIP_IRI, "pre"], capture_output=True, text=True, timeout=120)
    assert pre.returncode == 0, pre.stderr
    assert pre.stdout.split() == ["False", str(installed), "True"]  # untouched: IRI checks as the environment provides
