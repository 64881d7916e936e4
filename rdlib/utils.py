"""Small shared helpers: seeding, stable hashing, atomic writes, environment footer."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) like the official RD code (``setup_seed``)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def stable_hash(obj: Any, length: int = 12) -> str:
    """Hash of a JSON-serialisable object that does not depend on dict order or the Python process."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed derived from ``parts`` (names, indices), identical on every machine."""
    return int(stable_hash(parts, 16), 16) & ((1 << 63) - 1)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so a crash never leaves a half-written file (tmp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())                  # mkstemp creates 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_safe(obj: Any) -> Any:
    """NaN and ±inf → None (JSON has no NaN; a bare ``NaN`` makes the file unreadable to strict parsers)."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, np.floating):
        return json_safe(float(obj))
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON (NaN written as null), atomically."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and ``os.replace`` (atomic on POSIX)."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def git_commit(default: str = "unknown") -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or default
    except (OSError, subprocess.SubprocessError):
        return default


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def environment_info() -> dict[str, str]:
    """Versions, device and git commit: the footer every chapter prints."""
    from importlib.metadata import PackageNotFoundError, version

    import rdlib

    def pkg(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    info = {
        "rdlib": rdlib.__version__,
        "git commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": pkg("timm"),
        "numpy": np.__version__,
        "platform": platform.platform(terse=True),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)",
        "torch threads": str(torch.get_num_threads()),
    }
    info["triton"] = pkg("triton")
    return info


def environment_footer() -> str:
    """Markdown table for the end of a chapter (display it with ``IPython.display.Markdown``)."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in environment_info().items())
    return "| component | version |\n|---|---|\n" + rows
