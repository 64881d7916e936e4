"""Synthesis presets: each paper's constants in one place, with the paper or official code they come from.

Blend (DRAEM, Zavrtanik et al., ICCV 2021, official code):  I_a = I·(1 − M) + (1 − β)·T·M + β·I·M,  β = the share of the original kept.
RD-RE writes the same blend with the *texture* weight β_t = 1 − β ∈ [0.15, 1] (§3.1, Equation (1)).
AAND blends after ImageNet normalisation (§3); the per-channel normalisation is affine and the blend weights sum
to one at every pixel, so that blend equals the image-space blend followed by normalisation: the flag is recorded
(``blend_space``) but changes no pixel.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SynthesisPreset:
    name: str
    noise: str = "perlin"              # perlin | simplex | none
    p_anomalous: float = 0.5           # probability that a sample gets an anomaly
    augment: bool = True               # 3 of DRAEM's 10 augmenters on the texture
    keep_range: tuple[float, float] = (0.0, 0.8)     # β: share of the original image kept inside the mask
    foreground: str = "none"           # none | aand | urd (embedded categories: their own rule)
    min_mask_pixels: int = 0           # re-draw the mask until it has more pixels than this ...
    redraws: int = 1                   # ... at most this many times (AAND: > 4 pixels, 10 draws)
    blend_space: str = "image"         # image | normalised (AAND; equal, see the module docstring)
    returns_mask: bool = True          # RD++ trains without the mask
    simplex_scale: float = 0.2         # RD++: noise × 0.2 added inside one box
    box: tuple[int, int] = (10, 32)    # RD++: box side ~ U[10, 32)
    source: str = ""                   # where the constants come from


PRESETS = {
    "draem": SynthesisPreset("draem", "perlin", 0.5, True, (0.0, 0.8), "none",
                             source="DRAEM official code (3 of 10 augmenters, β ~ U[0, 0.8), P(anomalous) 0.5)"),
    "urd": SynthesisPreset("urd", "perlin", 1.0, False, (0.0, 0.8), "urd",
                           source="URD official code (texture not augmented, aug_prob 1.0, GrabCut/Otsu foreground)"),
    "aand": SynthesisPreset("aand", "perlin", 0.8, True, (0.0, 0.8), "aand", min_mask_pixels=4, redraws=10,
                            blend_space="normalised",
                            source="AAND official code (augmenters, P(anomalous) 0.8, > 4 mask pixels in ≤ 10 draws, "
                                   "normalised-space blend, fixed-threshold foreground)"),
    "rdre": SynthesisPreset("rdre", "perlin", 1.0, True, (0.0, 0.85), "none",
                            source="RD-RE paper, Sec. 3 (texture weight β_t ∈ [0.15, 1], i.e. original kept ∈ [0, 0.85])"),
    "rdre_foreground": SynthesisPreset("rdre_foreground", "perlin", 1.0, True, (0.0, 0.85), "urd",
                                       source="rdlib option: the rdre preset with anomalies kept inside URD's GrabCut/Otsu "
                                              "foreground (in neither the RD-RE paper, DRAEM nor DeSTSeg)"),
    "rdre_simplex": SynthesisPreset("rdre_simplex", "simplex", 1.0, False, (0.0, 0.0), "none",
                                    source="RD-RE paper, Table 8 (simplex noise instead of Perlin + texture)"),
    "rdre_none": SynthesisPreset("rdre_none", "none", 0.0, False, source="RD-RE Table 8 (no synthesis)"),
    "rdpp": SynthesisPreset("rdpp", "simplex", 1.0, False, (0.0, 0.0), "none", returns_mask=False,
                            source="RD++ official code (simplex noise × 0.2 in one 10–32 px box, no mask used)"),
}


def get_preset(name: str) -> SynthesisPreset:
    if name not in PRESETS:
        raise ValueError(f"synthesis preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]
