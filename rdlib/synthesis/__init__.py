"""Anomaly synthesis shared by URD, AAND, RD-RE and RD++: noise masks, texture augmenters, foreground masks,
blending, per-paper presets and a seeded dataset wrapper.

    from rdlib.synthesis import SyntheticAnomalies
    train = SyntheticAnomalies(normal_train_set, "urd", find_texture_source(), category="bottle")
"""
from rdlib.synthesis.augment import AUGMENTERS, random_augment
from rdlib.synthesis.blend import draem_blend, synthesize
from rdlib.synthesis.dataset import SyntheticAnomalies
from rdlib.synthesis.foreground import foreground
from rdlib.synthesis.noise import perlin_from_angles, perlin_masks, perlin_noise, simplex_octaves
from rdlib.synthesis.presets import PRESETS, SynthesisPreset, get_preset

__all__ = ["AUGMENTERS", "random_augment", "draem_blend", "synthesize", "SyntheticAnomalies", "foreground",
           "perlin_from_angles", "perlin_masks", "perlin_noise", "simplex_octaves", "PRESETS",
           "SynthesisPreset", "get_preset"]
