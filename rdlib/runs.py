"""Reusable training runs.

Every run lives in ``<runs_root>/<method>/<category>/<key>/`` where ``key`` hashes what determines its weights and
metrics: the method and all its options with defaults filled in, the loop settings that change the weights (not how
often it is evaluated or logged, unless a checkpoint is selected on those evaluations), the data's identity, the
category, and the code the run executes (:mod:`rdlib.provenance`: editing a method's loss gives its runs new keys;
editing a notebook or another method's package does not). A folder whose key the current code no longer computes
is stale: ``python -m rdlib runs stale [--remove]`` lists (and deletes) such folders, and no lookup reuses one. The folder holds ``config.json``, ``checkpoint.pt`` (the final, selected weights), ``history.json``,
``metrics.json`` and ``predictions.npz``. Asking for a finished run with the same key reuses it instead of
retraining, so chapters share runs and a rebuild of the book is incremental; an unfinished one resumes from its
checkpoint. ``RunSpec.from_profile("rd", "book", root, "brick")`` builds the spec the book, the CLI and the notebooks
share, from the method's profile.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import rdlib
from rdlib.data.dataset import AnomalyDataset
from rdlib.data.readers import DataError, read_dataset
from rdlib.methods import DataConfig, create_method, method_class, method_profile
from rdlib.training import EvalResult, FitConfig, evaluate, fit, load_checkpoint
from rdlib.utils import atomic_write_json, seed_everything, stable_hash

log = logging.getLogger(__name__)


UNKNOWN_METHOD = "its method is not registered in this process"


class RunError(RuntimeError):
    """A run folder that cannot be trusted (damaged files, a key collision); the message says what to do."""


def default_runs_dir() -> Path:
    """``rdlib.paths.runs_dir()``: $RDLIB_RUNS, the checkout's runs/, or ~/.cache/rdlib/runs."""
    from rdlib.paths import runs_dir

    return runs_dir()


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
    options: dict = field(default_factory=dict)      # method options (teacher, image_size, epochs, ...)
    fit: dict = field(default_factory=dict)          # FitConfig fields (batch_size, seed, eval_every, selection, ...)
    data_format: str | None = None

    @classmethod
    def from_profile(cls, method: str, profile: str, data_root: str | Path, category: str, options: dict | None = None,
                     fit: dict | None = None, data_format: str | None = None) -> "RunSpec":
        """The method's profile (its options and loop settings) with ``options`` / ``fit`` overriding entries."""
        prof = method_profile(method, profile, category)
        spec = cls(str(data_root), category, method, {**prof["options"], **(options or {})},
                   {**prof["fit"], **(fit or {})}, data_format)
        spec.full_options()                                   # validate now, not after data generation
        spec.fit_config()
        return spec

    def fit_config(self, device: str | None = None, progress: bool = False, num_workers: int = 0) -> FitConfig:
        unknown = sorted(set(self.fit) - set(FitConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown fit setting(s) {unknown}; valid: {sorted(FitConfig.__dataclass_fields__)}")
        return FitConfig(**{**self.fit, "device": device, "progress": progress, "num_workers": num_workers})

    def full_options(self) -> dict:
        """Options with the method's defaults filled in, so equivalent specs share one key (tuples as lists);
        options that change how but not what a run computes (e.g. the map backend) are left out."""
        cls = method_class(self.method)
        full = cls.validate_options(self.options)
        for k in getattr(cls, "KEY_EXCLUDE", ()):
            full.pop(k, None)
        return json.loads(json.dumps(full))

    def data_config(self) -> DataConfig:
        return method_class(self.method).data_config(self.options)

    def code(self) -> str:
        """Hash of the code this run executes (:func:`rdlib.provenance.code_hash`)."""
        from rdlib.provenance import code_hash

        return code_hash(self.method, bool(self.data_config().synthesis))

    def key(self) -> str:
        return stable_hash({"method": self.method, "options": self.full_options(), "fit": self.fit_config().key_dict(),
                            "format": self.data_format, "data": data_fingerprint(self.data_root, self.category),
                            "code": self.code()})

    def dir(self, runs_root: str | Path | None = None) -> Path:
        return Path(runs_root or default_runs_dir()) / self.method / self.category / self.key()

    def finished(self, runs_root: str | Path | None = None) -> bool:
        """Whether this run's folder holds a finished run (its metrics and final checkpoint) that recorded the
        evaluations these settings ask for."""
        d = self.dir(runs_root)
        if not ((d / "metrics.json").is_file() and (d / "checkpoint.pt").is_file()):
            return False
        try:
            recorded = json.loads((d / "metrics.json").read_text())["info"].get("evaluation")
        except Exception:  # noqa: BLE001 - a damaged run is not finished
            return False
        return self.fit_config().covered_by(recorded)

    def identity(self) -> dict:
        """What config.json must match for a folder to be this run (guards against a key collision)."""
        return {"method": self.method, "category": self.category, "options": self.full_options(),
                "fit": self.fit_config().key_dict(), "format": self.data_format}


@dataclass
class Run:
    spec: RunSpec
    dir: Path
    metrics: dict
    history: list
    info: dict

    def load_method(self, device: str | None = None, fast: bool = True, compile: bool | str = "auto"):
        """The trained method (the checkpoint holds the final weights, i.e. the selected ones under best_on_test),
        frozen for inference: ``predict`` takes the checked fast path (:mod:`rdlib.inference`) unless ``fast=False``;
        ``compile`` as :func:`rdlib.inference.optimize_for_inference` (default: on CUDA only)."""
        method = create_method(self.spec.method, **self.spec.options)
        ck = load_checkpoint(self.dir / "checkpoint.pt", "cpu")
        try:
            method.load_checkpoint_state(ck["method"])
        except RuntimeError as e:
            raise RunError(f"{self.dir / 'checkpoint.pt'}: {e}. Delete the run folder to retrain.") from None
        method = method.to(device or "cpu").eval()
        if fast:
            method.freeze(image_size=method.data_config(self.spec.options).image_size, compile=compile)
        return method

    def predictions(self) -> EvalResult:
        return EvalResult.load(self.dir / "predictions.npz", self.metrics)

    @property
    def steps(self) -> int:
        """Optimizer steps the run took over all its stages that have optimizers (0 for a training-free method),
        as the loop counted them (:meth:`rdlib.training.LoopState.optimizer_steps`)."""
        return int(self.info["optimizer_steps"])

    def design_row(self) -> dict:
        """What a long table needs besides the metrics to say what a verdict rests on."""
        return {"image_size": self.spec.data_config().image_size, "steps": self.steps, "key": self.dir.name}


def build_datasets(spec: RunSpec) -> tuple[AnomalyDataset, AnomalyDataset]:
    """Train and test sets of the spec's category, as the method's data config asks (size, interpolation)."""
    table = read_dataset(spec.data_root, spec.category, spec.data_format)
    dc = spec.data_config()
    train, test = table[table.split == "train"], table[table.split == "test"]
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{Path(spec.data_root) / spec.category}: needs both train and test images")
    kw = dict(image_interpolation=dc.image_interpolation, mask_interpolation=dc.mask_interpolation)
    train_set, test_set = AnomalyDataset(train, dc.image_size, **kw), AnomalyDataset(test, dc.image_size, **kw)
    if dc.synthesis:                                          # (normal, synthetic anomaly, mask) training items
        from rdlib.data.textures import find_texture_source
        from rdlib.synthesis import SyntheticAnomalies, get_preset

        textures = find_texture_source() if get_preset(dc.synthesis).noise == "perlin" else None
        train_set = SyntheticAnomalies(train_set, dc.synthesis, textures, spec.category)
    return train_set, test_set


def _check_identity(spec: RunSpec, d: Path) -> None:
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        return
    try:
        stored = json.loads(cfg_path.read_text())
        stored_spec = RunSpec(**stored["spec"])
        same = stored_spec.identity() == spec.identity()
    except Exception as e:  # noqa: BLE001 - an unreadable config is a damaged run
        raise RunError(f"{cfg_path}: unreadable run configuration ({type(e).__name__}: {e}). Delete {d} to retrain.") from None
    if not same:
        raise RunError(f"{d}: run key collision: the folder holds a different configuration than the one asked for "
                       f"(stored {stored_spec.identity()}, asked {spec.identity()}). Delete the folder or use another "
                       "runs directory.")


def get_or_train(spec: RunSpec, runs_root: str | Path | None = None, device: str | None = None,
                 progress: bool = True, retrain: bool = False, num_workers: int = 0) -> Run:
    """Return the finished run for ``spec``, training (or resuming) it first if needed."""
    d = spec.dir(runs_root)
    metrics_path = d / "metrics.json"
    _check_identity(spec, d)
    if metrics_path.exists() and not retrain:
        if not (d / "checkpoint.pt").is_file():
            log.warning("%s: metrics without a checkpoint (damaged run): retraining it", d)
            retrain = True
        elif spec.fit_config().covered_by(_load(spec, d).info.get("evaluation")):
            log.info("reusing run %s", d)
            return _load(spec, d)
        else:                                  # same key, same weights: retrained only to record the evaluations
            log.info("%s: retraining to record the evaluations asked for (%s); the weights do not change", d,
                     spec.fit_config().evaluation())
            retrain = True
    d.mkdir(parents=True, exist_ok=True)
    if not retrain and (d / "checkpoint.pt").is_file() and (d / "config.json").is_file():
        try:                                       # an unfinished run: resume only under the same evaluations
            recorded = json.loads((d / "config.json").read_text()).get("evaluation")
        except Exception:  # noqa: BLE001
            recorded = None
        if recorded != spec.fit_config().evaluation():
            log.info("%s: unfinished run recorded other evaluations (%s): starting it again", d, recorded)
            retrain = True
    if retrain:
        for f in ("checkpoint.pt", "metrics.json", "history.json", "predictions.npz", *[p.name for p in d.glob("best-*.pt")]):
            (d / f).unlink(missing_ok=True)
    atomic_write_json(d / "config.json", {"spec": asdict(spec), "key": spec.key(), "code": spec.code(),
                                          "evaluation": spec.fit_config().evaluation(), "rdlib": rdlib.__version__})
    train_set, test_set = build_datasets(spec)
    cfg = spec.fit_config(device, progress, num_workers)
    seed_everything(cfg.seed)                       # the initial weights depend on the seed too
    method = create_method(spec.method, **spec.options)
    t0 = time.perf_counter()
    out = fit(method, train_set, test_set, cfg, run_dir=d)
    train_seconds = time.perf_counter() - t0 - out["overhead_seconds"]     # the steps, not the curve's evaluations
    res = evaluate(method, test_set, device=cfg.device)
    res.save(d / "predictions.npz")
    atomic_write_json(d / "history.json", out["history"])
    info = {"train_seconds": train_seconds, "overhead_seconds": out["overhead_seconds"], "seconds_per_image": res.seconds_per_image, "best": out["best"],
            "selection": cfg.selection, "n_train": len(train_set), "n_test": len(test_set),
            "device": str(next(method.parameters()).device), "data_config": asdict(spec.data_config()),
            "texture_source": getattr(train_set, "texture_source", None), "notes": res.notes,
            "evaluation": cfg.evaluation(), "optimizer_steps": out["optimizer_steps"]}
    atomic_write_json(metrics_path, {"metrics": res.metrics, "info": info})
    return _load(spec, d)


def load_run(where: RunSpec | str | Path, runs_root: str | Path | None = None) -> Run:
    """A finished run: by its spec (looked up under ``runs_root``) or by its folder (which holds config.json)."""
    if isinstance(where, RunSpec):
        spec, d = where, where.dir(runs_root)
        _check_identity(spec, d)
    else:
        d = Path(where)
        if not (d / "config.json").is_file():
            raise FileNotFoundError(f"{d}: not a run folder (no config.json)")
        spec, why = _stored_spec(d)
        if why == UNKNOWN_METHOD:
            raise RunError(f"{d}: its method {spec.method!r} is not registered: import the module that registers it "
                           "(@register_method) first")
        if why:
            raise RunError(f"{d}: stale run ({why}): its results are not what the current code and data would "
                           "give. Retrain it (python -m rdlib train ...); `python -m rdlib runs stale --remove` "
                           "deletes every stale run folder.")
    if not (d / "metrics.json").is_file() or not (d / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{d}: no finished run there (needs metrics.json and checkpoint.pt); train it first "
                                f"(python -m rdlib train, or rdlib.runs.get_or_train)")
    return _load(spec, d)


def _stored_spec(d: Path) -> tuple[RunSpec | None, str]:
    """The spec in a run folder's config.json and, when the folder is stale (the current code, options or data give
    another key, or the configuration is unreadable), why."""
    from rdlib.methods import list_methods

    try:
        stored = json.loads((d / "config.json").read_text())
        spec = RunSpec(**stored["spec"])
    except Exception as e:  # noqa: BLE001 - unreadable: stale
        return None, f"its configuration no longer loads: {type(e).__name__}: {e}"
    if spec.method not in list_methods():
        return spec, UNKNOWN_METHOD
    try:
        key = spec.key()
    except Exception as e:  # noqa: BLE001 - options or loop settings the current code refuses: stale
        return None, f"its configuration no longer loads: {type(e).__name__}: {e}"
    if key == d.name:
        return spec, ""
    if stored.get("code") not in (None, spec.code()):
        return spec, "the code it executes changed"
    if "code" not in stored:
        return spec, "trained before run keys followed the code"
    return spec, "its options, loop settings or data changed"


def stale_runs(runs_root: str | Path | None = None) -> list[tuple[Path, str]]:
    """Every run folder under ``runs_root`` (``<method>/<category>/<key>/``) whose key the current code, options
    and data no longer give, with the reason: such runs are never reused. Runs of a method that is not registered
    in this process (one defined outside rdlib) cannot be checked here and are left out."""
    root = Path(runs_root or default_runs_dir())
    out = []
    for cfg in sorted(root.glob("*/*/*/config.json")):
        _, why = _stored_spec(cfg.parent)
        if why and why != UNKNOWN_METHOD:
            out.append((cfg.parent, why))
    return out


def _load(spec: RunSpec, d: Path) -> Run:
    try:
        m = json.loads((d / "metrics.json").read_text())
        history = json.loads((d / "history.json").read_text()) if (d / "history.json").exists() else []
        return Run(spec, d, m["metrics"], history, m["info"])
    except Exception as e:  # noqa: BLE001
        raise RunError(f"{d}: damaged run files ({type(e).__name__}: {e}). Delete the folder to retrain.") from None
