"""RD as a trainable method: Adam on OCBE + decoder, cosine distillation loss, cached teacher features.

Training (paper + official code): Adam(lr 0.005, β = (0.5, 0.999)), batch 16, 200 epochs, 256², seed 111; the
teacher stays frozen in eval mode. RD trains without augmentation, so the frozen teacher's features of the training
set are computed once and reused every epoch (``cache_features=True``): the teacher forward is most of a CPU step.
The profiles below are the one place its hyper-parameters are written down (CLI, runs and notebooks read them).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch.utils.data import Dataset

from rdlib.methods import register_method
from rdlib.methods.base import Method, Stage, cached_batches, encode_dataset
from rdlib.methods.rd.loss import check_loss, rd_loss
from rdlib.methods.rd.model import ReverseDistillation

_ADAM = dict(lr=0.005, betas=(0.5, 0.999))
PROFILES = {
    # the paper's protocol (WideResNet50-2 with torchvision IMAGENET1K_V1 weights, 200 epochs, last checkpoint)
    "paper": {"options": dict(teacher="wide_resnet50_2", image_size=256, epochs=200, **_ADAM),
              "fit": dict(batch_size=16, seed=111)},
    # the book's chapters on a GPU (e.g. Colab): the embedded benchmark with the offline teacher, at the paper's
    # 256² and its 200 epochs (1000 optimizer steps at 80 training images). Lite0's signed maps pass through a ReLU
    # (the paper's ResNet teachers emit post-ReLU maps; the RD chapter measures the difference).
    "full": {"options": dict(teacher="efficientnet_lite0", image_size=256, epochs=200, teacher_activation="relu", **_ADAM),
             "fit": dict(batch_size=16, seed=111)},
    # what the book runs on the embedded benchmark on a 2-core CPU: 128², 50 epochs = 250 optimizer steps (the RD
    # chapter's learning curves: with ReLU'd maps, 300 steps gave no systematic gain over 200-250)
    "book": {"options": dict(teacher="efficientnet_lite0", image_size=128, epochs=50, teacher_activation="relu", **_ADAM),
             "fit": dict(batch_size=16, seed=111, checkpoint_seconds=60)},
    # seconds on a CPU: proves that every path runs
    "ci": {"options": dict(teacher="efficientnet_lite0", image_size=64, epochs=2, teacher_activation="relu", **_ADAM),
           "fit": dict(batch_size=8, seed=111)},
}


@register_method("rd", profiles=PROFILES, summary="RD (Deng & Li, CVPR 2022): reverse distillation from a one-class embedding")
class RDMethod(Method):
    """RD. Options: teacher, weights, bottleneck ('oce+mff'|'oce'|'pre'), loss ('flatten' code default | 'pixel'
    paper), image_size, levels (map levels), teacher_activation ('none' | 'relu', see the model), lr, betas,
    epochs, cache_features."""

    KEY_EXCLUDE = ("cache_features",)          # how it is computed, not what: not part of run keys

    def __init__(self, teacher: str = "efficientnet_lite0", weights: str = "imagenet", bottleneck: str = "oce+mff",
                 loss: str = "flatten", image_size: int = 256, levels: tuple[int, ...] | None = None, lr: float = 0.005,
                 betas: tuple[float, float] = (0.5, 0.999), epochs: int = 200, cache_features: bool = True,
                 teacher_activation: str = "none"):
        super().__init__()
        self.loss_mode = check_loss(loss)
        self.model = ReverseDistillation(teacher, weights, bottleneck, image_size=image_size, levels=levels,
                                         teacher_activation=teacher_activation)
        self.lr, self.betas, self.epochs = lr, tuple(betas), epochs
        self.cache_features = cache_features
        self._cache: list[torch.Tensor] | None = None

    def stages(self) -> list[Stage]:
        return [Stage("distill", epochs=self.epochs, trains=("model.bottleneck", "model.decoder"))]

    def frozen_prefixes(self) -> tuple[str, ...]:
        return ("model.teacher.",)

    def configure_optimizers(self, stage: Stage) -> dict[str, torch.optim.Optimizer]:
        params = [*self.model.bottleneck.parameters(), *self.model.decoder.parameters()]
        return {"student": torch.optim.Adam(params, lr=self.lr, betas=self.betas)}

    def setup_training(self, dataset: Dataset, stage: Stage, device: torch.device) -> None:
        if self.cache_features:
            self._cache = encode_dataset(dataset, self.model.encode, device)

    def teardown_training(self, stage: Stage) -> None:
        self._cache = None                                      # WRN50-2 at paper scale: ~1.5 GB of features

    def train_batches(self, dataset, stage, batch_size, generator, device, num_workers=0) -> Iterable[dict]:
        if self._cache is None:
            yield from super().train_batches(dataset, stage, batch_size, generator, device, num_workers)
        else:
            yield from cached_batches(self._cache, generator, batch_size)

    def training_step(self, batch, optimizers, stage) -> dict[str, float]:
        t, s = self.model(batch.get("image"), teacher_features=batch.get("teacher_features"))
        loss = rd_loss(t, s, self.loss_mode)
        opt = optimizers["student"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item()}
