"""Data: readers for MVTec AD / MPDD / BTAD / VisA, the embedded benchmark, torch datasets, texture sources."""
from rdlib.data.dataset import AnomalyDataset, SeededItems, load_split
from rdlib.data.embedded import CATEGORIES as EMBEDDED_CATEGORIES
from rdlib.data.embedded import DEFECTS as EMBEDDED_DEFECTS
from rdlib.data.embedded import EmbeddedConfig, generate_embedded
from rdlib.data.readers import DataError, detect_format, list_categories, load_image, load_mask, read_dataset, verify
from rdlib.data.textures import TextureSource, find_texture_source

__all__ = ["AnomalyDataset", "SeededItems", "load_split", "EMBEDDED_CATEGORIES", "EMBEDDED_DEFECTS", "EmbeddedConfig",
           "generate_embedded", "DataError", "detect_format", "list_categories", "load_image", "load_mask",
           "read_dataset", "verify", "TextureSource", "find_texture_source"]
