"""DRAEM's ten texture augmenters on torchvision's ``transforms.v2`` functional API (imgaug is unmaintained and
breaks on NumPy 2). Each takes and returns a 3×H×W uint8 tensor; ``random_augment`` applies three distinct ones,
as DRAEM's ``randAugmenter`` does. Ranges follow DRAEM's official code (VitjanZ/DRAEM, ``data_loader.py``); imgaug's per-channel gamma and its
hue/saturation units (−50..50 on a 0..255 hue circle) are converted to their torchvision equivalents.
"""
from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF


def _u(g: torch.Generator, lo: float, hi: float, n: int = 1) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def gamma_contrast(x, g):
    """GammaContrast(0.5–2, per channel): x^γ_c."""
    gamma = _u(g, 0.5, 2.0, 3).view(3, 1, 1)
    return (((x.float() / 255.0) ** gamma) * 255.0).round().clamp(0, 255).to(torch.uint8)


def brightness(x, g):
    """MultiplyAndAddToBrightness(mul 0.8–1.2, add −30..30), applied to all channels."""
    mul, add = _u(g, 0.8, 1.2).item(), _u(g, -30, 30).item()
    return (x.float() * mul + add).round().clamp(0, 255).to(torch.uint8)


def sharpness(x, g):
    """EnhanceSharpness (PIL's ImageEnhance.Sharpness), factor 0–2."""
    return TF.adjust_sharpness(x, _u(g, 0.0, 2.0).item())


def hue_saturation(x, g):
    """AddToHueAndSaturation(−50..50): hue shift of ±50/255 of the circle, saturation × (1 ± 50/255)."""
    x = TF.adjust_hue(x, _u(g, -50 / 255, 50 / 255).item())
    return TF.adjust_saturation(x, 1.0 + _u(g, -50 / 255, 50 / 255).item())


def solarize(x, g):
    """Solarize(threshold 32–128): pixels ≥ threshold inverted."""
    return TF.solarize(x, float(torch.randint(32, 129, (1,), generator=g)))


def posterize(x, g):
    """Posterize: keep 4–8 bits per channel."""
    return TF.posterize(x, int(torch.randint(4, 9, (1,), generator=g)))


def invert(x, g):
    return TF.invert(x)


def autocontrast(x, g):
    return TF.autocontrast(x)


def equalize(x, g):
    return TF.equalize(x)


def rotate(x, g):
    """Affine rotation by U(−45°, 45°), nearest neighbour, zeros outside (imgaug's defaults)."""
    return TF.rotate(x, _u(g, -45.0, 45.0).item(), interpolation=TF.InterpolationMode.NEAREST)


AUGMENTERS = {"gamma_contrast": gamma_contrast, "brightness": brightness, "sharpness": sharpness,
              "hue_saturation": hue_saturation, "solarize": solarize, "posterize": posterize, "invert": invert,
              "autocontrast": autocontrast, "equalize": equalize, "rotate": rotate}


def random_augment(x: torch.Tensor, g: torch.Generator, n: int = 3) -> tuple[torch.Tensor, list[str]]:
    """Apply ``n`` distinct augmenters drawn from the ten, in random order; returns (image, their names)."""
    names = list(AUGMENTERS)
    picked = [names[i] for i in torch.randperm(len(names), generator=g)[:n].tolist()]
    for name in picked:
        x = AUGMENTERS[name](x, g)
    return x, picked
