"""Nearest-neighbour patch reference: ``model.py`` (memory bank, distances), ``method.py`` (one memorising pass)."""
from rdlib.methods.patchknn.method import PROFILES, PatchKNNMethod
from rdlib.methods.patchknn.model import PatchKNN

__all__ = ["PROFILES", "PatchKNN", "PatchKNNMethod"]
