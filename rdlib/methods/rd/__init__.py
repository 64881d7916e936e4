"""RD (Deng & Li, CVPR 2022), read top to bottom beside its chapter: ``model.py`` (E → OCBE → D and the map),
``loss.py`` (flattened vs per-pixel cosine), ``method.py`` (training, profiles, registration)."""
from rdlib.methods.rd.loss import rd_loss
from rdlib.methods.rd.method import PROFILES, RDMethod
from rdlib.methods.rd.model import ReverseDistillation

__all__ = ["PROFILES", "RDMethod", "ReverseDistillation", "rd_loss"]
