"""The teaching track: student export of notebooks/teach (no solutions, no outputs, valid nbformat), the command line,
and the student versions running top to bottom with every exercise left unanswered."""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from csbench.teach import export_student, is_solution

ROOT = Path(__file__).resolve().parents[1]
TEACH = ROOT / "notebooks" / "teach"
LESSONS = sorted(p.name for p in TEACH.glob("*.ipynb"))


def test_lessons_exist():
    assert 6 <= len(LESSONS) <= 8, LESSONS


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    "Student versions in <tmp>/build/teach-student, two levels below a folder whose data/ is the repository's."
    root = tmp_path_factory.mktemp("repo")
    (root / "data").symlink_to(ROOT / "data", target_is_directory=True)
    out = root / "build" / "teach-student"
    paths = export_student(TEACH, out)
    assert sorted(p.name for p in paths) == LESSONS
    return out


@pytest.mark.parametrize("name", LESSONS)
def test_student_version(student, name):
    trainer = nbformat.read(TEACH / name, as_version=4)
    nb = nbformat.read(student / name, as_version=4)
    nbformat.validate(nb)
    solutions = [c for c in trainer.cells if is_solution(c)]
    assert len(solutions) >= 2, f"{name}: every lesson has exercises with solutions"
    assert not any(is_solution(c) for c in nb.cells)
    assert [c.source for c in nb.cells] == [c.source for c in trainer.cells if not is_solution(c)]   # everything else, in order
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    checks = [c for c in code if ".check(" in c.source]
    placeholders = [c for c in code if "..." in c.source and c.source.lstrip().startswith("answer")]
    assert len(checks) == len(placeholders) == len(solutions), name
    assert any("glossary(" in c.source for c in code), f"{name}: glossary section"
    assert any(c.cell_type == "markdown" and "用語集" in c.source for c in nb.cells), f"{name}: bilingual glossary heading"


def test_solution_cells_are_collapsed():
    "`hide_input` survives nbdev-clean; `jupyter.source_hidden` (what JupyterLab reads) is restored by `collapse`."
    for name in LESSONS:
        for c in nbformat.read(TEACH / name, as_version=4).cells:
            if is_solution(c): assert c.metadata.get("hide_input") is True, name


def test_command_line(tmp_path):
    out, key = tmp_path / "student", tmp_path / "key"
    r = subprocess.run([sys.executable, "-m", "csbench.teach", "export", str(TEACH), str(out), "--answer-key", str(key)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"wrote {len(LESSONS)} student notebook(s)" in r.stdout
    assert sorted(p.name for p in out.glob("*.ipynb")) == LESSONS
    assert sorted(p.stem for p in key.glob("*.md")) == [Path(n).stem for n in LESSONS]
    for p in out.glob("*.ipynb"):
        assert not any(is_solution(c) for c in nbformat.read(p, as_version=4).cells)
    bad = subprocess.run([sys.executable, "-m", "csbench.teach", "export", str(tmp_path / "nope"), str(out)],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and "no folder" in bad.stderr and "Traceback" not in bad.stderr


def _run_student(student: Path, name: str, monkeypatch):
    "Execute a student notebook (feedback, not errors) and return the feedback lines of its check cells."
    from nbclient import NotebookClient
    monkeypatch.setenv("CSBENCH_TEACH_STRICT", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(student / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(student)}}).execute()
    return [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" and ".check(" in c.source
            for o in c.outputs if "text/markdown" in o.get("data", {})]


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n.startswith("02") else pytest.mark.slow) for n in LESSONS])
def test_student_version_runs(student, name, monkeypatch):
    feedback = _run_student(student, name, monkeypatch)
    assert feedback and all("Not answered yet" in f for f in feedback), feedback
