"""Colab set-up shared by every notebook (standard library only: it runs before rdlib's dependencies are checked).

Every notebook has the same setup cell::

    import sys
    if "google.colab" in sys.modules:
        import subprocess
        subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, "/content/rdlib"], check=False)
        sys.path.insert(0, "/content/rdlib")
        from rdlib.colab import setup
        setup("/content/rdlib")

so every chapter works from the same clone: rdlib installed editable from it, the working directory set to it, and
the embedded benchmark and the runs in its ``data/`` and ``runs/`` (see :mod:`rdlib.paths`), whichever notebook ran
first. ``tests/test_colab_setup.py`` runs this cell against a local clone in a fresh virtual environment.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path


def setup(dest: str | os.PathLike = "/content/rdlib", extras: str = "colab", pip_args: tuple[str, ...] = (),
          mount_drive: bool = True) -> Path:
    """Install the clone at ``dest`` (editable, with ``extras``), work from it, and mount Google Drive on Colab."""
    dest = Path(dest).resolve()
    if not (dest / "pyproject.toml").is_file():
        raise FileNotFoundError(f"{dest}: not an rdlib clone (no pyproject.toml); clone the repository there first")
    target = f"{dest}[{extras}]" if extras else str(dest)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pip_args, "-e", target], check=True)
    if str(dest) not in sys.path:
        sys.path.insert(0, str(dest))
    importlib.invalidate_caches()
    os.chdir(dest)
    if mount_drive and "google.colab" in sys.modules:  # pragma: no cover - only on Colab
        from google.colab import drive

        drive.mount("/content/drive")
    return dest
