"""RD++ as a trainable method (Tien et al., CVPR 2023; official code tientrandinh/Revisiting-Reverse-Distillation, ``main.py``).

One stage trains projection + OCBE + decoder on pairs (normal image x, noisy copy x̃) from the ``rdpp`` synthesis
preset (OpenSimplex noise × 0.2 added in one 10–31 px box, no mask, no clipping):

    L = L_distill(E(x), D(OCBE(P(E(x))))) + 0.2 · L_proj(E(x̃), P(E(x̃)), P(E(x)))

with two Adam optimizers (β = (0.5, 0.999)): lr 0.005 for OCBE + decoder and 0.001 for the projection; gradients
of 2 batches are summed before each step (the code's ``accumulation_steps = 2``; the loss is not halved). The count
restarts every epoch, as the code's batch index does; where an epoch has an odd number of batches its last one steps
alone (the code carries its gradient into the next epoch), so a checkpoint at an epoch boundary holds no pending
gradient and a resumed run equals an uninterrupted one. The code
trains per-class epochs (10 to 300) and keeps the best epoch *on the test set*; rdlib keeps the last checkpoint by
default (the protocol of every chapter) and offers the code's selection as a labelled ``FitConfig`` option.
"""
from __future__ import annotations

from typing import Iterable

import torch

from rdlib.losses import cosine_loss_flatten
from rdlib.methods import register_method
from rdlib.methods.base import DataConfig, Method, Stage
from rdlib.methods.rdpp.loss import projection_loss
from rdlib.methods.rdpp.model import RDPlusPlus

_ADAM = dict(lr=0.005, proj_lr=0.001, betas=(0.5, 0.999))
# the official per-class epochs (``main.py`` of the RD++ repository); MVTec classes not listed there train the default 200
PAPER_EPOCHS = {"carpet": 10, "leather": 10, "wood": 100, "hazelnut": 160, "metal_nut": 160, "bottle": 200, "pill": 200,
                "cable": 240, "grid": 260, "tile": 260, "screw": 280, "toothbrush": 280, "capsule": 300,
                "transistor": 300, "zipper": 300}
PROFILES = {
    "paper": {"options": dict(teacher="wide_resnet50_2", image_size=256, epochs=200, **_ADAM),
              "fit": dict(batch_size=16, seed=111),
              "category_options": {c: dict(epochs=e) for c, e in PAPER_EPOCHS.items()}},
    # the embedded benchmark with the offline teacher, as RD's profiles (same size, epochs and teacher activation)
    "full": {"options": dict(teacher="efficientnet_lite0", image_size=256, epochs=200, teacher_activation="relu", **_ADAM),
             "fit": dict(batch_size=16, seed=111)},
    # the book on a 2-core CPU skips L_SSOT: it is 0 up to rounding (tested) and took ~0.4 s of a ~0.5 s step
    "book": {"options": dict(teacher="efficientnet_lite0", image_size=128, epochs=50, teacher_activation="relu",
                             ssot=False, **_ADAM),
             "fit": dict(batch_size=16, seed=111, checkpoint_seconds=60)},
    "ci": {"options": dict(teacher="efficientnet_lite0", image_size=64, epochs=2, teacher_activation="relu", **_ADAM),
           "fit": dict(batch_size=8, seed=111)},
}


@register_method("rdpp", profiles=PROFILES,
                 summary="RD++ (Tien et al., CVPR 2023): RD with projection layers trained by SSOT, reconstruction and contrast")
class RDPPMethod(Method):
    """RD++. Options: teacher, weights, teacher_activation, bottleneck, image_size, levels (map levels);
    proj_weight (0.2), recon_weight (0.01), contrast_weight (0.1), contrast_margin (0.5), ssot (compute L_SSOT, which
    is 0 up to rounding: see :mod:`rdlib.methods.rdpp.loss`), ssot_blur (0.05),
    ssot_scaling (0.95); lr (OCBE + decoder), proj_lr (projection), betas, accumulate (batches per optimizer step),
    epochs."""


    def __init__(self, teacher: str = "efficientnet_lite0", weights: str = "imagenet", teacher_activation: str = "none",
                 bottleneck: str = "oce+mff", image_size: int = 256, levels: tuple[int, ...] | None = None,
                 proj_weight: float = 0.2, recon_weight: float = 0.01, contrast_weight: float = 0.1,
                 contrast_margin: float = 0.5, ssot: bool = True, ssot_blur: float = 0.05, ssot_scaling: float = 0.95,
                 lr: float = 0.005, proj_lr: float = 0.001, betas: tuple[float, float] = (0.5, 0.999),
                 accumulate: int = 2, epochs: int = 200):
        super().__init__()
        if accumulate < 1:
            raise ValueError(f"accumulate (batches per optimizer step) must be >= 1, got {accumulate}")
        if not 0 < ssot_scaling < 1:
            raise ValueError(f"ssot_scaling (geomloss' ε-annealing factor) must be in (0, 1), got {ssot_scaling}")
        self.model = RDPlusPlus(teacher, weights, bottleneck, image_size=image_size, levels=levels,
                                teacher_activation=teacher_activation)
        self.proj_weight, self.recon_weight, self.contrast_weight = proj_weight, recon_weight, contrast_weight
        self.contrast_margin, self.ssot, self.ssot_blur, self.ssot_scaling = contrast_margin, bool(ssot), ssot_blur, ssot_scaling
        self.lr, self.proj_lr, self.betas, self.accumulate, self.epochs = lr, proj_lr, tuple(betas), int(accumulate), epochs
        self._micro = 0

    @classmethod
    def data_config(cls, options: dict) -> DataConfig:
        full = {**cls.option_defaults(), **options}
        return DataConfig(image_size=int(full["image_size"]), synthesis="rdpp")

    def stages(self) -> list[Stage]:
        return [Stage("distill", epochs=self.epochs, trains=("model.projection", "model.bottleneck", "model.decoder"))]

    def frozen_prefixes(self) -> tuple[str, ...]:
        return ("model.teacher.",)

    def configure_optimizers(self, stage: Stage) -> dict[str, torch.optim.Optimizer]:
        m = self.model
        return {"student": torch.optim.Adam([*m.bottleneck.parameters(), *m.decoder.parameters()], lr=self.lr,
                                            betas=self.betas),
                "projection": torch.optim.Adam(m.projection.parameters(), lr=self.proj_lr, betas=self.betas)}

    def setup_training(self, dataset, stage: Stage, device: torch.device) -> None:
        self._micro = 0

    def teardown_training(self, stage: Stage) -> None:
        self.model.zero_grad(set_to_none=True)        # a last, unfinished accumulation is dropped
        self._micro = 0

    def train_batches(self, dataset, stage, batch_size, generator, device, num_workers=0) -> Iterable[dict]:
        """The epoch's batches, the last one flagged (``"epoch_end"``) so that it closes the accumulation."""
        self._micro = 0
        previous = None
        for batch in super().train_batches(dataset, stage, batch_size, generator, device, num_workers):
            if previous is not None:
                yield previous
            previous = batch
        if previous is not None:
            yield {**previous, "epoch_end": True}

    def training_step(self, batch, optimizers, stage) -> dict[str, float]:
        m = self.model
        x, noisy = batch["image"], batch["synthetic"]
        with torch.no_grad():
            both = m.encode(torch.cat([x, noisy]))                       # E(x), E(x̃) in one teacher pass (eval BN)
        t, t_noisy = [f[:len(x)] for f in both], [f[len(x):] for f in both]
        p, p_noisy = m.project(t), m.project(t_noisy)                   # P(E(x)), P(E(x̃))
        distill = cosine_loss_flatten(t, m.decode(p))                   # L_distill against the raw teacher
        terms = projection_loss(t_noisy, p_noisy, p, self.recon_weight, self.contrast_weight, self.contrast_margin,
                                self.ssot_blur, self.ssot_scaling, ssot=self.ssot)
        loss = distill + self.proj_weight * terms["proj"]               # L = L_distill + 0.2 · L_proj
        loss.backward()                                                 # gradients of `accumulate` batches add up
        self._micro += 1
        if self._micro % self.accumulate == 0 or batch.get("epoch_end", False):
            for opt in optimizers.values():
                opt.step()
                opt.zero_grad(set_to_none=True)
        return {"loss": loss.item(), "distill": distill.item(), **{k: v.item() for k, v in terms.items()}}
