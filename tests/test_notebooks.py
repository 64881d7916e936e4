"""Notebooks: pairing, structure, execution in the ci profile, and the book built from the executed notebooks.

The executed notebooks land in ``_executed/ci/`` where ``make test`` then re-runs them with nbval.
"""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NAMES = sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.py"))
OUT = ROOT / "_executed" / "ci"


def _cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_there_are_notebooks():
    assert NAMES[:3] == ["00_data", "01_rd", "02_kernels"]


@pytest.mark.parametrize("name", NAMES)
def test_py_and_ipynb_are_in_sync(name):
    py, ipynb = NB_DIR / f"{name}.py", NB_DIR / f"{name}.ipynb"
    assert ipynb.is_file(), f"{ipynb} missing: run `jupytext --sync {py}`"
    a, b = jupytext.read(py), jupytext.read(ipynb)
    assert _cells(a) == _cells(b), f"{py} and {ipynb} differ: run `jupytext --sync {py}`"
    assert all(not c.get("outputs") for c in b.cells if c.cell_type == "code"), f"{ipynb} has outputs: strip them"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_structure(name):
    nb = jupytext.read(NB_DIR / f"{name}.py")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "PROFILE" in tagged[0].source
    assert "colab.research.google.com" in nb.cells[0].source, "first cell opens with an Open-in-Colab badge"
    assert "environment_footer" in nb.cells[-1].source, "last cell prints the environment footer"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def _runner():
    spec = importlib.util.spec_from_file_location("nb_run", NB_DIR / "_run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def executed():
    runner = _runner()
    if OUT.exists():
        shutil.rmtree(OUT)
    failures = []
    for name in NAMES:
        try:
            runner.execute(name, runner.load_params("ci", name), OUT / f"{name}.ipynb")
        except Exception as e:  # noqa: BLE001 - report every failing notebook, not just the first
            failures.append(f"{name}: {type(e).__name__}: {str(e)[-3000:]}")
    assert not failures, "\n\n".join(failures)
    return OUT


@pytest.mark.notebooks
def test_notebooks_execute_in_ci_profile(executed):
    import nbformat

    for name in NAMES:
        nb = nbformat.read(executed / f"{name}.ipynb", as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors


@pytest.mark.notebooks
def test_book_builds_from_executed_notebooks_with_warnings_as_errors(executed, tmp_path):
    book = tmp_path / "book_root"
    book.mkdir()
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / f, book / f)
    shutil.copytree(ROOT / "book", book / "book")
    shutil.copytree(ROOT / "rdlib", book / "rdlib", ignore=shutil.ignore_patterns("__pycache__"))   # literalinclude
    shutil.copytree(executed, book / "_executed" / "book")
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(book), "-W", "-n", "--keep-going"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = book / "_build" / "html"
    assert (html / "index.html").is_file()
    for name in NAMES:
        assert (html / "_executed" / "book" / f"{name}.html").is_file()


def test_sweep_survives_a_failing_value(tmp_path, monkeypatch, capsys):
    runner = _runner()
    calls = []

    def fake_execute(name, params, out, log_output=False):
        calls.append(params["CATEGORIES"])
        if params["CATEGORIES"] == ["bad"]:
            raise RuntimeError("boom")

    monkeypatch.setattr(runner, "execute", fake_execute)
    rc = runner.main(["--profile", "ci", "--only", "01_rd", "--out", str(tmp_path), "--sweep", "CATEGORIES=brick,bad,coffee"])
    assert rc == 1 and calls == [["brick"], ["bad"], ["coffee"]]
    assert "FAILED" in capsys.readouterr().out
