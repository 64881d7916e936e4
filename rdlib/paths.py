"""Where rdlib reads and writes: data, runs and its bundled resources (standard library only, so the Colab setup
cell can import it before the dependencies are installed).

* ``data_dir()``: ``$RDLIB_DATA``, else ``<checkout>/data`` when rdlib runs from a source checkout (editable install,
  Colab clone), else ``~/.cache/rdlib/data``. Every notebook and the CLI therefore put the embedded benchmark in the
  same place.
* ``runs_dir()``: ``$RDLIB_RUNS``, else ``<checkout>/runs``, else ``~/.cache/rdlib/runs``.
* ``resource(name)``: files shipped inside the package (``rdlib/resources/``), e.g. the papers' numbers.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The source checkout rdlib runs from (the folder with ``pyproject.toml`` naming rdlib), or None if installed."""
    root = PACKAGE_DIR.parent
    pyproject = root / "pyproject.toml"
    try:
        if pyproject.is_file() and 'name = "rdlib"' in pyproject.read_text():
            return root
    except OSError:
        pass
    return None


def _home_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rdlib"


def data_dir() -> Path:
    if os.environ.get("RDLIB_DATA"):
        return Path(os.environ["RDLIB_DATA"])
    root = checkout_root()
    return root / "data" if root else _home_cache() / "data"


def runs_dir() -> Path:
    if os.environ.get("RDLIB_RUNS"):
        return Path(os.environ["RDLIB_RUNS"])
    root = checkout_root()
    return root / "runs" if root else _home_cache() / "runs"


def resource(name: str) -> Path:
    """A file shipped with the package (``rdlib/resources/<name>``); raises FileNotFoundError naming it."""
    path = PACKAGE_DIR / "resources" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: rdlib resource missing; reinstall rdlib (it ships with the package)")
    return path


def paper_numbers_file() -> Path:
    return resource("paper_reported.yaml")
