"""Reusable training runs.

Every run lives in ``<runs_root>/<method>/<category>/<key>/`` where ``key`` hashes the full configuration (method
and its options, teacher and weights, data identity, category, image size, schedule, seed, checkpoint rule,
rdlib version). The folder holds ``config.json``, ``checkpoint.pt``, ``history.json``, ``metrics.json`` and
``predictions.npz``. Asking for a finished run with the same key reuses it instead of retraining, so chapters
share baselines and a rebuild of the book is incremental; an unfinished one resumes from its checkpoint.
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import rdlib
from rdlib.data.dataset import AnomalyDataset
from rdlib.data.readers import DataError, read_dataset
from rdlib.methods import create_method
from rdlib.training import EvalResult, FitConfig, evaluate, fit
from rdlib.utils import atomic_write_json, seed_everything, stable_hash

log = logging.getLogger(__name__)


def default_runs_dir() -> Path:
    return Path(os.environ.get("RDLIB_RUNS", Path(__file__).resolve().parents[1] / "runs"))


def data_fingerprint(root: str | Path, category: str) -> dict:
    """Identity of a category's files that does not depend on where the dataset lives: name, count, bytes."""
    folder = Path(root) / category
    if not folder.is_dir():
        return {"root": Path(root).name, "category": category}
    files = [p for p in folder.rglob("*") if p.is_file()]
    return {"root": Path(root).name, "category": category, "files": len(files), "bytes": sum(p.stat().st_size for p in files)}


@dataclass
class RunSpec:
    """Everything that determines a run's result."""

    data_root: str
    category: str
    method: str = "rd"
    options: dict = field(default_factory=dict)      # method options (teacher, weights, image_size, loss, epochs, ...)
    fit: dict = field(default_factory=dict)          # FitConfig fields (batch_size, seed, eval_every, selection)
    data_format: str | None = None

    def fit_config(self, device: str | None = None, progress: bool = False) -> FitConfig:
        return FitConfig(**{**self.fit, "device": device, "progress": progress})

    def full_options(self) -> dict:
        """Options with the method's defaults filled in, so equivalent specs share one key (tuples as lists)."""
        from rdlib.methods import METHODS

        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; available: {sorted(METHODS)}")
        params = inspect.signature(METHODS[self.method].__init__).parameters
        unknown = set(self.options) - set(params)
        if unknown:
            raise ValueError(f"unknown {self.method} option(s) {sorted(unknown)}; valid: {sorted(p for p in params if p != 'self')}")
        full = {k: p.default for k, p in params.items() if k != "self" and p.default is not inspect.Parameter.empty}
        full.update(self.options)
        full.pop("map_backend", None)           # how the map is computed, not what it computes
        return json.loads(json.dumps(full))

    def key(self) -> str:
        fc = asdict(self.fit_config())
        for k in ("device", "progress"):
            fc.pop(k)
        return stable_hash({"method": self.method, "options": self.full_options(), "fit": fc, "format": self.data_format,
                            "data": data_fingerprint(self.data_root, self.category), "rdlib": rdlib.__version__})

    def dir(self, runs_root: str | Path | None = None) -> Path:
        return Path(runs_root or default_runs_dir()) / self.method / self.category / self.key()


@dataclass
class Run:
    spec: RunSpec
    dir: Path
    metrics: dict
    history: list
    info: dict

    def load_method(self, device: str | None = None):
        method = create_method(self.spec.method, **self.spec.options)
        ck = torch.load(self.dir / "checkpoint.pt", map_location="cpu", weights_only=False)
        best = self.dir / "best.pt"
        state = torch.load(best, map_location="cpu") if self.spec.fit.get("selection") == "best_on_test" and best.exists() else ck["method"]
        method.load_checkpoint_state(state)
        return method.to(device or "cpu").eval()

    def predictions(self) -> EvalResult:
        return EvalResult.load(self.dir / "predictions.npz", self.metrics)


def _datasets(spec: RunSpec) -> tuple[AnomalyDataset, AnomalyDataset]:
    table = read_dataset(spec.data_root, spec.category, spec.data_format)
    size = spec.options.get("image_size", 256)
    train, test = table[table.split == "train"], table[table.split == "test"]
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{Path(spec.data_root) / spec.category}: needs both train and test images")
    return AnomalyDataset(train, size), AnomalyDataset(test, size)


def get_or_train(spec: RunSpec, runs_root: str | Path | None = None, device: str | None = None,
                 progress: bool = False, retrain: bool = False) -> Run:
    """Return the finished run for ``spec``, training (or resuming) it first if needed."""
    d = spec.dir(runs_root)
    metrics_path = d / "metrics.json"
    if metrics_path.exists() and not retrain:
        log.info("reusing run %s", d)
        return _load(spec, d)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_json(d / "config.json", {"spec": asdict(spec), "key": spec.key(), "rdlib": rdlib.__version__})
    if retrain:
        for f in ("checkpoint.pt", "best.pt", "metrics.json"):
            (d / f).unlink(missing_ok=True)
    train_set, test_set = _datasets(spec)
    cfg = spec.fit_config(device, progress)
    seed_everything(cfg.seed)                       # the initial weights depend on the seed too
    method = create_method(spec.method, **spec.options)
    t0 = time.perf_counter()
    out = fit(method, train_set, test_set, cfg, run_dir=d)
    train_seconds = time.perf_counter() - t0
    res = evaluate(method, test_set, device=cfg.device)
    res.save(d / "predictions.npz")
    atomic_write_json(d / "history.json", out["history"])
    info = {"train_seconds": train_seconds, "seconds_per_image": res.seconds_per_image, "best": out["best"],
            "selection": cfg.selection, "n_train": len(train_set), "n_test": len(test_set),
            "device": str(next(method.parameters()).device)}
    atomic_write_json(metrics_path, {"metrics": res.metrics, "info": info})
    return _load(spec, d)


def load_run(where: RunSpec | str | Path, runs_root: str | Path | None = None) -> Run:
    """A finished run: by its spec (looked up under ``runs_root``) or by its folder (which holds config.json)."""
    if isinstance(where, RunSpec):
        spec, d = where, where.dir(runs_root)
    else:
        d = Path(where)
        if not (d / "config.json").is_file():
            raise FileNotFoundError(f"{d}: not a run folder (no config.json)")
        spec = RunSpec(**json.loads((d / "config.json").read_text())["spec"])
    if not (d / "metrics.json").is_file() or not (d / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{d}: no finished run there (needs metrics.json and checkpoint.pt); train it first "
                                f"(python -m rdlib train, or rdlib.runs.get_or_train)")
    return _load(spec, d)


def _load(spec: RunSpec, d: Path) -> Run:
    m = json.loads((d / "metrics.json").read_text())
    history = json.loads((d / "history.json").read_text()) if (d / "history.json").exists() else []
    return Run(spec, d, m["metrics"], history, m["info"])
