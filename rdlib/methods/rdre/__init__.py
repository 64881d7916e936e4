"""RD-RE (Fu & Lin, Computers 2026), the first public implementation, read top to bottom beside its chapter:
``lda.py`` (locally-aware dynamic attention), ``assa.py`` (adaptive sparse self-attention and CAAMS-FF), ``seg.py``
(the segmentation sub-network: discrepancy input, coordinate attention, ASPP), ``loss.py`` (focal + L1),
``model.py`` (teacher, student encoder–decoder with cross-stage fusion, head), ``method.py`` (two stages, SGD
parameter groups, profiles and :data:`ASSUMPTIONS`: every value the paper leaves open, with its source)."""
from rdlib.methods.rdre.assa import ASSA, CAAMSFF
from rdlib.methods.rdre.lda import LDA
from rdlib.methods.rdre.loss import SEG_LOSSES, focal_loss, segmentation_loss, target_mask
from rdlib.methods.rdre.method import ASSUMPTIONS, PROFILES, SYNTHESIS, RDREMethod
from rdlib.methods.rdre.model import RDRE, FusionDecoder
from rdlib.methods.rdre.seg import ASPP, CoordinateAttention, SegmentationHead, discrepancy

__all__ = ["ASPP", "ASSA", "ASSUMPTIONS", "CAAMSFF", "CoordinateAttention", "FusionDecoder", "LDA", "PROFILES", "RDRE",
           "RDREMethod", "SEG_LOSSES", "SYNTHESIS", "SegmentationHead", "discrepancy", "focal_loss",
           "segmentation_loss", "target_mask"]
