"""The nearest-neighbour reference as a method: one pass over the normal images fills the memory bank (no
optimizer, no gradient), so it runs through the same loop, run store, CLI and tables as every other method."""
from __future__ import annotations

import torch

from rdlib.methods import register_method
from rdlib.methods.base import Method, Stage
from rdlib.methods.patchknn.model import PatchKNN, greedy_coreset

# The book keeps 10 % of the patches (PatchCore's default): a 256² test image then costs ~0.06 s instead of ~0.6 s
# on this 2-core CPU; the paper profile keeps every patch (it runs on a GPU).
PROFILES = {
    "paper": {"options": dict(teacher="wide_resnet50_2", image_size=256, coreset=1.0), "fit": dict(batch_size=16, seed=111)},
    "full": {"options": dict(teacher="efficientnet_lite0", image_size=256, coreset=0.1), "fit": dict(batch_size=16, seed=111)},
    "book": {"options": dict(teacher="efficientnet_lite0", image_size=128, coreset=0.1), "fit": dict(batch_size=16, seed=111)},
    "ci": {"options": dict(teacher="efficientnet_lite0", image_size=64, coreset=0.5), "fit": dict(batch_size=8, seed=111)},
}


@register_method("patch_knn", profiles=PROFILES,
                 summary="Nearest-neighbour patch reference (PatchCore-style, greedy coreset), training-free")
class PatchKNNMethod(Method):
    """Options: teacher, weights, levels, image_size, sigma, coreset (fraction of patches kept, 1.0 = all)."""

    def __init__(self, teacher: str = "efficientnet_lite0", weights: str = "imagenet", levels: tuple[int, ...] = (1, 2),
                 image_size: int = 256, sigma: float = 4.0, coreset: float = 1.0):
        super().__init__()
        if not 0 < coreset <= 1:
            raise ValueError(f"coreset={coreset}: the fraction of patches kept must be in (0, 1]")
        self.model = PatchKNN(teacher, weights, levels, image_size, sigma)
        self.coreset = coreset
        self._bank: list[torch.Tensor] = []

    def stages(self) -> list[Stage]:
        # "trains" the model without an optimizer: the loop puts it in train mode, where its forward returns the
        # patches to memorise (the frozen teacher stays in eval mode)
        return [Stage("memorise", epochs=1, trains=("model",))]

    def configure_optimizers(self, stage: Stage) -> dict:
        return {}

    def frozen_prefixes(self) -> tuple[str, ...]:
        return ("model.teacher.",)

    def training_step(self, batch, optimizers, stage) -> dict[str, float]:
        self._bank.append(self.model(batch["image"]))
        return {"patches": float(self._bank[-1].shape[0])}

    def teardown_training(self, stage: Stage) -> None:
        if self._bank:
            bank = torch.cat(self._bank)
            keep = greedy_coreset(bank, max(1, round(self.coreset * bank.shape[0])))
            self.model.memory = bank[keep.to(bank.device)]
        self._bank = []

    def load_checkpoint_state(self, state: dict) -> None:
        self.model.memory = state["model.memory"].clone()      # the bank's size is only known from the checkpoint
        super().load_checkpoint_state(state)
