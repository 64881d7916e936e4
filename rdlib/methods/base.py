"""What a method gives the training loop, and what the loop promises a method.

A method is an ``nn.Module`` that owns its networks and says how to train them; the loop in
:mod:`rdlib.training` owns budgets, data order, seeds, train/eval modes, schedulers, checkpoints, evaluation and
checkpoint selection. One loop serves RD (one optimizer), URD (a trainable teacher with its own optimizer), AAND
(two stages with different trainable parts and LR schedules) and RD-RE (a segmentation head in a second stage).

The contract, in order of a run:

* ``stages()``: a list of :class:`Stage` — a name, a budget in epochs **or** optimizer steps, and the module names
  that train in it (the loop puts exactly those, and their parents, in ``train()`` mode and everything else in
  ``eval()``; it refuses an optimizer that holds a parameter outside them).
* ``configure_optimizers(stage)`` → ``{name: optimizer}``; ``configure_schedulers(stage, optimizers)`` →
  ``{name: LR scheduler}``, stepped once per unit of the stage's budget (per epoch or per step) and checkpointed.
* ``setup_training`` / ``train_batches`` / ``training_step`` / ``teardown_training`` per stage.
* ``extra_metric_names(stage)`` / ``extra_metrics(stage, dataset, device)``: method-specific numbers (e.g. AAND's
  gate precision) that a checkpoint-selection rule may use.
* ``forward`` of the method's model: features while training, ``(anomaly map B×1×S×S, image score B)`` in eval
  mode; :meth:`Method.predict` is that call under ``eval()`` and ``no_grad``. :meth:`Method.scoring` changes the
  scoring (levels, smoothing, top-k) of a trained method for a block of code.
* ``data_config(options)``: image size, interpolation and synthesis preset: what runs, CLI and notebooks use to
  build the datasets.
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

# The options that set a method's optimizer budget, one per stage (epochs or steps), as the methods name them.
BUDGET_OPTIONS = ("epochs", "steps", "raa_epochs", "distill_epochs", "student_steps", "seg_steps")


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Args:
        name: unique within the method (also part of the per-epoch seeds).
        epochs / steps: the budget, exactly one of them ≥ 1. With ``steps`` the loop runs as many passes over the
            data as needed and stops after that many optimizer steps (URD: 5k iterations; DeSTSeg: 1k + 4k).
        trains: dotted names of the modules trained in this stage (``"model.bottleneck"``). Empty: every module
            that owns a parameter given to an optimizer (resolved by the loop).
        eval_every: evaluate on the test set every this many units of the budget (0: never during the stage).
    """

    name: str
    epochs: int | None = None
    steps: int | None = None
    trains: tuple[str, ...] = ()
    eval_every: int = 0

    def __post_init__(self):
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(f"stage {self.name!r}: give exactly one budget, epochs or steps "
                             f"(got epochs={self.epochs}, steps={self.steps})")
        if self.length < 1:
            raise ValueError(f"stage {self.name!r}: the budget must be >= 1, got {self.unit}s={self.length}")
        object.__setattr__(self, "trains", tuple(self.trains))

    @property
    def unit(self) -> str:
        return "epoch" if self.epochs is not None else "step"

    @property
    def length(self) -> int:
        return int(self.epochs if self.epochs is not None else self.steps)


@dataclass(frozen=True)
class DataConfig:
    """How a method wants its images: size, PIL interpolation of images and masks, and its synthesis preset.

    Images reach the model in [0, 1]; each teacher applies its own mean/std (``normalisation`` names it, for the
    record and for presets that blend in normalised space, e.g. AAND).
    """

    image_size: int = 256
    image_interpolation: str = "bilinear"
    mask_interpolation: str = "bilinear"
    normalisation: str = "teacher"
    synthesis: str | None = None


def encode_dataset(dataset: Dataset, encode, device: torch.device, batch: int = 16) -> list[torch.Tensor]:
    """``encode`` (images B×3×S×S → list of B×C×h×w maps) over every item's ``"image"``, concatenated per level: the
    feature cache of a method whose frozen inputs do not change between epochs (RD, AAND's stage 2)."""
    chunks = []
    for i in range(0, len(dataset), batch):
        x = torch.stack([dataset[j]["image"] for j in range(i, min(i + batch, len(dataset)))]).to(device)
        chunks.append(encode(x))
    return [torch.cat(level) for level in zip(*chunks)]


def cached_batches(cache: list[torch.Tensor], generator: torch.Generator, batch_size: int) -> Iterable[dict]:
    """Batches ``{"teacher_features": [...]}`` of a feature cache, in the order the uncached path draws
    (``torch.randperm`` from the same generator), so a cached and an uncached run see the same batches."""
    order = torch.randperm(cache[0].shape[0], generator=generator)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size].to(cache[0].device)
        yield {"teacher_features": [f.index_select(0, idx) for f in cache]}


class OptionError(ValueError):
    """An option a method does not have, or a value it cannot take; the message lists the valid options."""


class Method(nn.Module):
    """Base class of every method. Subclasses set ``name``, build ``self.model`` and implement ``stages``,
    ``configure_optimizers`` and ``training_step``."""

    name = "method"

    # ----------------------------------------------------------------------------------------- options and data
    @classmethod
    def option_defaults(cls) -> dict:
        """Every constructor option with its default (what a run key is built from)."""
        params = inspect.signature(cls.__init__).parameters
        return {k: p.default for k, p in params.items()
                if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    @classmethod
    def validate_options(cls, options: dict) -> dict:
        """Raise :class:`OptionError` for unknown options (listing the valid ones); return the full options."""
        defaults = cls.option_defaults()
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise OptionError(f"unknown {cls.name} option(s) {unknown}; valid options: "
                              + ", ".join(f"{k}={v!r}" for k, v in sorted(defaults.items())))
        missing = sorted(k for k, v in defaults.items() if v is inspect.Parameter.empty and k not in options)
        if missing:
            raise OptionError(f"{cls.name}: required option(s) {missing} missing")
        return {**defaults, **options}

    @classmethod
    def data_config(cls, options: dict) -> DataConfig:
        """The data this method trains and evaluates on, for the given options (default: the image size)."""
        full = {**cls.option_defaults(), **options}
        return DataConfig(image_size=int(full.get("image_size", 256)))

    # ----------------------------------------------------------------------------------------------- training
    def stages(self) -> list[Stage]:
        raise NotImplementedError

    def configure_optimizers(self, stage: Stage) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def configure_schedulers(self, stage: Stage, optimizers: dict) -> dict:
        """LR schedulers by optimizer name (default none); stepped once per epoch or step of the stage budget."""
        return {}

    def training_step(self, batch: dict, optimizers: dict[str, torch.optim.Optimizer], stage: Stage) -> dict[str, float]:
        """One optimisation step on ``batch``; performs backward/step itself; returns scalar logs."""
        raise NotImplementedError

    def setup_training(self, dataset: Dataset, stage: Stage, device: torch.device) -> None:
        """Called once per stage before its first step (e.g. to cache frozen-teacher features)."""

    def teardown_training(self, stage: Stage) -> None:
        """Called once per stage after its last step, also when training stops with an error (free caches)."""

    def train_batches(self, dataset: Dataset, stage: Stage, batch_size: int, generator: torch.Generator,
                      device: torch.device, num_workers: int = 0) -> Iterable[dict]:
        """Batches of one epoch, in the order drawn from ``generator`` (seeded per epoch by the loop).

        The order is drawn here, in the main process, so ``num_workers`` never changes it; a dataset that draws
        random numbers per item seeds them from (epoch seed, index) (see :class:`rdlib.data.dataset.SeededItems`).
        """
        order = torch.randperm(len(dataset), generator=generator).tolist()
        loader = DataLoader(dataset, batch_size=batch_size, sampler=order, num_workers=num_workers, drop_last=False,
                            persistent_workers=False)
        for batch in loader:
            yield {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def extra_metric_names(self, stage: Stage) -> tuple[str, ...]:
        """Names of the method's own evaluation numbers in ``stage`` (usable by checkpoint selection)."""
        return ()

    def extra_metrics(self, stage: Stage, dataset: Dataset, device: torch.device) -> dict[str, float]:
        return {}

    # ---------------------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images B×3×S×S in [0,1] → (anomaly maps B×1×S×S, image scores B): the model's eval-mode forward, through
        the inference fast path once the method is frozen (:meth:`freeze`)."""
        self.eval()
        fast = self.__dict__.get("_fast_path")
        if fast is not None and not self.__dict__.get("_fast_suspended") and \
                next(fast.model.parameters()).device == images.device:
            return fast(images)
        return self.model(images)

    def freeze(self, **options):
        """Prepare :meth:`predict`'s fast path (BN folded into convolutions, channels-last, inference mode,
        ``torch.compile`` where it pays; checked against the plain path, see :mod:`rdlib.inference`) and return its
        report. Training (``train()``) or loading a checkpoint drops it; :meth:`scoring` blocks bypass it."""
        from rdlib.inference import optimize_for_inference

        self.eval()
        fast = optimize_for_inference(self, **options)
        object.__setattr__(self, "_fast_path", fast)             # not a registered submodule (no state_dict entries)
        return fast.report

    def unfreeze(self) -> None:
        object.__setattr__(self, "_fast_path", None)

    def train(self, mode: bool = True):
        if mode:
            self.unfreeze()                                      # weights may change: the folded copy would be stale
        return super().train(mode)

    def anomaly_map_module(self) -> nn.Module:
        """The module that turns features into (map, score); :meth:`scoring` reconfigures it."""
        return self.model.anomaly_map

    @contextlib.contextmanager
    def scoring(self, source: str | None = None, **options):
        """Temporarily change how maps are scored, e.g. ``with method.scoring(levels=(1, 2)): evaluate(...)``
        (RD Table 7) or ``scoring(score="topk", top_k=100)``; options of :class:`rdlib.anomaly_map.AnomalyMap`.
        ``source`` picks which map a model with several scores with (its ``map_source``, checked by its
        ``check_map_source``): AAND's ``"gate"`` (Table V (a)), RD-RE's ``"distill"`` (Table 5 without Seg)."""
        model = getattr(self, "model", None)
        old_source = getattr(model, "map_source", None)
        if source is not None:
            if not hasattr(model, "check_map_source"):
                raise ValueError(f"source={source!r}: {type(self).__name__} scores with one map only")
            model.map_source = model.check_map_source(source)
        module = self.anomaly_map_module()
        object.__setattr__(self, "_fast_suspended", self.__dict__.get("_fast_suspended", 0) + 1)   # plain path inside
        try:
            old = module.configure(**options)
        except Exception:
            if source is not None:
                model.map_source = old_source
            object.__setattr__(self, "_fast_suspended", self.__dict__["_fast_suspended"] - 1)
            raise
        try:
            yield self
        finally:
            module.configure(**old)
            if source is not None:
                model.map_source = old_source
            object.__setattr__(self, "_fast_suspended", self.__dict__["_fast_suspended"] - 1)

    # -------------------------------------------------------------------------------------------- checkpoints
    def checkpoint_state(self) -> dict:
        """What a checkpoint stores (default: everything but the parameters and buffers of frozen modules)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(self.frozen_prefixes())}

    def frozen_prefixes(self) -> tuple[str, ...]:
        return ()

    def load_checkpoint_state(self, state: dict) -> None:
        self.unfreeze()
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(self.frozen_prefixes())]
        if missing or unexpected:
            raise RuntimeError(f"checkpoint does not match the method {self.name!r}: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")
