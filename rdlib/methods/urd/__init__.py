"""URD (Liu et al., AAAI 2025), read top to bottom beside its chapter: ``gii.py`` (Guided Information Injection),
``model.py`` (expert, trainable teacher, student with GII), ``loss.py`` (L_TE and L_S), ``method.py`` (the two
optimizer steps per batch, profiles, registration)."""
from rdlib.methods.urd.gii import GII, GII_MODES, GIIDecoder
from rdlib.methods.urd.loss import level_masks, student_loss, teacher_loss
from rdlib.methods.urd.method import PROFILES, URDMethod
from rdlib.methods.urd.model import URD

__all__ = ["GII", "GII_MODES", "GIIDecoder", "PROFILES", "URD", "URDMethod", "level_masks", "student_loss", "teacher_loss"]
