"""RD++ (Tien et al., CVPR 2023, "Revisiting Reverse Distillation"), the baseline URD and AAND quote, read top to
bottom: ``projection.py`` (the per-level projection layers), ``loss.py`` (SSOT through geomloss, reconstruction,
contrast), ``model.py`` (E → projection → OCBE → D, map against the raw teacher), ``method.py`` (two learning rates,
gradient accumulation, profiles)."""
from rdlib.methods.rdpp.loss import contrast_loss, projection_loss, reconstruction_loss, sinkhorn_divergence, ssot_loss
from rdlib.methods.rdpp.method import PROFILES, RDPPMethod
from rdlib.methods.rdpp.model import RDPlusPlus
from rdlib.methods.rdpp.projection import MultiProjection, ProjectionLayer

__all__ = ["MultiProjection", "PROFILES", "ProjectionLayer", "RDPPMethod", "RDPlusPlus", "contrast_loss",
           "projection_loss", "reconstruction_loss", "sinkhorn_divergence", "ssot_loss"]
