"""What a method gives the training loop.

A method is an ``nn.Module`` that owns its networks and says how to train them; the loop in
:mod:`rdlib.training` owns epochs, data order, seeds, checkpoints, evaluation and progress. This split lets one
loop serve RD (one optimizer), URD (a trainable teacher with its own optimizer), AAND (two stages) and RD-RE
(a segmentation head trained in a second stage): each stage gets its own optimizers from the method, and
``training_step`` may step several of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


@dataclass(frozen=True)
class Stage:
    name: str
    epochs: int


class Method(nn.Module):
    """Base class. Subclasses set ``name`` and implement ``stages``, ``configure_optimizers``, ``training_step``,
    ``predict``; they may override ``train_batches`` (e.g. to cache frozen-teacher features)."""

    name = "method"

    def stages(self) -> list[Stage]:
        raise NotImplementedError

    def configure_optimizers(self, stage: Stage) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def training_step(self, batch: dict, optimizers: dict[str, torch.optim.Optimizer], stage: Stage) -> dict[str, float]:
        """One optimisation step on ``batch``; performs backward/step itself; returns scalar logs."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images B×3×S×S in [0,1] → (anomaly maps B×1×S×S, image scores B)."""
        raise NotImplementedError

    def setup_training(self, dataset: Dataset, stage: Stage, device: torch.device) -> None:
        """Hook called once per stage before its first epoch (e.g. to cache features)."""

    def teardown_training(self, stage: Stage) -> None:
        """Hook called once per stage after its last epoch, also when training stops with an error (free caches)."""

    def train_batches(self, dataset: Dataset, stage: Stage, batch_size: int, generator: torch.Generator,
                      device: torch.device) -> Iterable[dict]:
        """Batches of one epoch, in the order given by ``generator`` (seeded per epoch by the loop)."""
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator, num_workers=0,
                            drop_last=False)
        for batch in loader:
            yield {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def checkpoint_state(self) -> dict:
        """What a checkpoint stores (default: everything but frozen parameters and buffers of frozen modules)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(self.frozen_prefixes())}

    def frozen_prefixes(self) -> tuple[str, ...]:
        return ()

    def load_checkpoint_state(self, state: dict) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(self.frozen_prefixes())]
        if missing or unexpected:
            raise RuntimeError(f"checkpoint does not match the method: missing {missing[:5]}, unexpected {unexpected[:5]}")
