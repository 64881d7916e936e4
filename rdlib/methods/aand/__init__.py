"""AAND (Tang et al., IEEE TIP 2026), read top to bottom beside its chapter: ``raa.py`` (residual anomaly
amplification: MRG gate and ARG residual), ``loss.py`` (focal, amplification, hard-KD losses), ``model.py`` (vanilla
teacher → advanced teacher → OCBE → decoder), ``method.py`` (the two stages, profiles, registration)."""
from rdlib.methods.aand.loss import amplification_loss, focal_loss, hard_kd_loss, pooled_masks, residual_intensity
from rdlib.methods.aand.method import PROFILES, AANDMethod
from rdlib.methods.aand.model import AAND, MAP_SOURCES
from rdlib.methods.aand.raa import GATES, RAA, RESIDUALS, positional_encoding_2d

__all__ = ["AAND", "AANDMethod", "GATES", "MAP_SOURCES", "PROFILES", "RAA", "RESIDUALS", "amplification_loss",
           "focal_loss", "hard_kd_loss", "pooled_masks", "positional_encoding_2d", "residual_intensity"]
