"""RD as a trainable method: Adam on OCBE + decoder, cosine distillation loss, cached teacher features.

Training (paper + official code): Adam(lr 0.005, β = (0.5, 0.999)), batch 16, 200 epochs, 256², seed 111; the
teacher stays frozen in eval mode. RD trains without augmentation, so the frozen teacher's features of the training
set are computed once and reused every epoch (``cache_features=True``): the teacher forward is most of a CPU step.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch.utils.data import Dataset

from rdlib.losses import distillation_loss
from rdlib.methods.base import Method, Stage
from rdlib.models.rd import ReverseDistillation

# Training profiles (hyper-parameters by purpose). "paper" is the paper's protocol.
PROFILES = {
    "paper": dict(teacher="wide_resnet50_2", image_size=256, epochs=200, batch_size=16, lr=0.005, betas=(0.5, 0.999), seed=111),
    "book": dict(teacher="efficientnet_lite0", image_size=256, epochs=40, batch_size=16, lr=0.005, betas=(0.5, 0.999), seed=111),
    "ci": dict(teacher="efficientnet_lite0", image_size=64, epochs=2, batch_size=8, lr=0.005, betas=(0.5, 0.999), seed=111),
}


class RDMethod(Method):
    """Args: teacher, weights, bottleneck ('oce+mff'|'oce'|'pre'), loss ('flatten' code default | 'pixel' paper),
    image_size, levels (map levels), lr, betas, epochs, cache_features, map_backend."""

    name = "rd"

    def __init__(self, teacher: str = "efficientnet_lite0", weights: str = "imagenet", bottleneck: str = "oce+mff",
                 loss: str = "flatten", image_size: int = 256, levels: tuple[int, ...] | None = None, lr: float = 0.005,
                 betas: tuple[float, float] = (0.5, 0.999), epochs: int = 200, cache_features: bool = True,
                 map_backend: str | None = None):
        super().__init__()
        self.model = ReverseDistillation(teacher, weights, bottleneck, image_size=image_size, levels=levels,
                                         map_backend=map_backend)
        self.loss_mode, self.lr, self.betas, self.epochs = loss, lr, tuple(betas), epochs
        self.cache_features = cache_features
        self._cache: list[torch.Tensor] | None = None
        distillation_loss([torch.zeros(1, 1)], [torch.ones(1, 1)], loss)  # validates `loss` early

    def stages(self) -> list[Stage]:
        return [Stage("distill", self.epochs)]

    def frozen_prefixes(self) -> tuple[str, ...]:
        return ("model.teacher.",)

    def configure_optimizers(self, stage: Stage) -> dict[str, torch.optim.Optimizer]:
        return {"student": torch.optim.Adam(self.model.trainable_modules().parameters(), lr=self.lr, betas=self.betas)}

    def setup_training(self, dataset: Dataset, stage: Stage, device: torch.device) -> None:
        if not self.cache_features:
            return
        chunks = []
        self.model.teacher.eval()
        with torch.no_grad():
            for i in range(0, len(dataset), 16):
                x = torch.stack([dataset[j]["image"] for j in range(i, min(i + 16, len(dataset)))]).to(device)
                chunks.append(self.model.teacher(x))
        self._cache = [torch.cat(level) for level in zip(*chunks)]

    def teardown_training(self, stage: Stage) -> None:
        self._cache = None                                      # WRN50-2 at paper scale: ~1.5 GB of features

    def train_batches(self, dataset, stage, batch_size, generator, device) -> Iterable[dict]:
        if self._cache is None:
            yield from super().train_batches(dataset, stage, batch_size, generator, device)
            return
        order = torch.randperm(len(dataset), generator=generator)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size].to(self._cache[0].device)
            yield {"teacher_features": [f.index_select(0, idx) for f in self._cache]}

    def training_step(self, batch, optimizers, stage) -> dict[str, float]:
        self.model.bottleneck.train()
        self.model.decoder.train()
        if "teacher_features" in batch:
            t = batch["teacher_features"]
        else:
            with torch.no_grad():
                t = self.model.teacher(batch["image"])
        s = self.model.student(t)
        loss = distillation_loss(t, s, self.loss_mode)
        opt = optimizers["student"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.eval()
        return self.model.predict(images)
