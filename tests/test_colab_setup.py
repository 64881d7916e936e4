"""Colab set-up: one identical cell in every notebook, exercised against a local clone in a fresh virtual environment
(the clone URL is the notebooks' REPO_URL parameter), and the papers' numbers shipped inside the package."""
import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def setup_cell(path: Path) -> str:
    cells = [c.source for c in jupytext.read(path).cells if c.cell_type == "code" and "rdlib.colab import setup" in c.source]
    assert len(cells) == 1, f"{path.name}: expected exactly one Colab setup cell"
    return cells[0]


def test_every_notebook_has_the_same_setup_cell_and_a_repo_url_parameter():
    cells = {p.name: setup_cell(p) for p in NOTEBOOKS}
    assert len(set(cells.values())) == 1, "the Colab setup cells differ between notebooks"
    for p in NOTEBOOKS:
        params = next(c.source for c in jupytext.read(p).cells if "parameters" in c.metadata.get("tags", []))
        assert "REPO_URL = " in params, f"{p.name}: REPO_URL missing from the parameters cell"


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def clone_source(tmp_path_factory):
    """A committed snapshot of the working tree (the cell clones with git, as on Colab)."""
    src = tmp_path_factory.mktemp("src") / "rdlib"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(src)], check=True)
    for rel in subprocess.run(["git", "ls-files", "-m", "-o", "--exclude-standard"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.split():
        target = src / rel                                   # uncommitted edits travel too: test what is on disk
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / rel).is_file():
            target.write_bytes((ROOT / rel).read_bytes())
    _git("add", "-A", cwd=src)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "snapshot", "--allow-empty"],
                   cwd=src, check=True)
    return src


def test_the_setup_cell_installs_a_clone_in_a_fresh_environment(clone_source, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    dest = tmp_path / "content" / "rdlib"
    cell = setup_cell(NOTEBOOKS[0]).replace("/content/rdlib", str(dest))
    cell = cell.replace('setup("' + str(dest) + '")', 'setup("' + str(dest) + '", extras="", pip_args=("--no-deps",))')
    script = "\n".join([
        "import sys, types, os, json",
        "colab = sys.modules['google.colab'] = types.ModuleType('google.colab')     # pretend to be Colab",
        "colab.drive = types.SimpleNamespace(mount=lambda path: print('mounted', path, file=sys.stderr))",
        f"REPO_URL = {str(clone_source)!r}",
        cell,
        "import rdlib, rdlib.paths",
        "print(json.dumps({'rdlib': rdlib.__file__, 'cwd': os.getcwd(), 'data': str(rdlib.paths.data_dir()),",
        "                  'yaml': rdlib.paths.paper_numbers_file().is_file()}))",
    ])
    proc = subprocess.run([str(py), "-c", script], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mounted /content/drive" in proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rdlib"] == str(dest / "rdlib" / "__init__.py")
    assert out["cwd"] == str(dest) and out["data"] == str(dest / "data") and out["yaml"]
    # the editable install is visible to a new process of that environment (the notebook kernel after setup)
    again = subprocess.run([str(py), "-c", "import rdlib; print(rdlib.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert again.stdout.strip() == str(dest / "rdlib" / "__init__.py"), again.stderr[-2000:]


def test_a_built_wheel_ships_the_papers_numbers(clone_source, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(clone_source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel = next(tmp_path.glob("rdlib-*.whl"))
    assert "rdlib/resources/paper_reported.yaml" in zipfile.ZipFile(wheel).namelist()
