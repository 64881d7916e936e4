import logging
import struct

import numpy as np
import pytest

from rdlib.data.textures import find_texture_source, procedural_textures, read_gimp_pattern


def test_gimp_pattern_reader(tmp_path):
    w, h, bpp = 3, 2, 3
    name = b"test\x00"
    header = struct.pack(">5I", 24 + len(name), 1, w, h, bpp) + b"GPAT" + name
    px = np.arange(w * h * bpp, dtype=np.uint8)
    (tmp_path / "t.pat").write_bytes(header + px.tobytes())
    arr = read_gimp_pattern(tmp_path / "t.pat")
    assert arr.shape == (2, 3, 3) and np.array_equal(arr.ravel(), px)
    (tmp_path / "bad.pat").write_bytes(b"x" * 40)
    with pytest.raises(ValueError, match="GPAT"):
        read_gimp_pattern(tmp_path / "bad.pat")


def test_dtd_folder_first(tmp_path, caplog):
    from PIL import Image

    (tmp_path / "images/banded").mkdir(parents=True)
    Image.fromarray(np.full((40, 40, 3), 7, np.uint8)).save(tmp_path / "images/banded/banded_0001.jpg")
    with caplog.at_level(logging.INFO, logger="rdlib.data.textures"):
        src = find_texture_source(tmp_path)
    assert src.name.startswith("dtd:") and len(src.images) == 1
    assert [r.levelno for r in caplog.records] == [logging.INFO] and "DTD folder" in caplog.text


def test_a_source_other_than_dtd_is_logged_at_warning(caplog):
    with caplog.at_level(logging.INFO, logger="rdlib.data.textures"):
        src = find_texture_source(allow=("procedural",))
    assert src.name == "procedural"
    assert any(r.levelno == logging.WARNING and "not DTD" in r.getMessage() for r in caplog.records)
    tex = src.sample(np.random.default_rng(0), 64)
    assert tex.shape == (64, 64, 3) and 0 <= tex.min() and tex.max() <= 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rdlib.data.textures"):   # a caller that shows the source itself
        find_texture_source(allow=("procedural",), warn=False)
    assert [r.levelno for r in caplog.records] == [logging.INFO] and "not DTD" in caplog.text


def test_missing_dtd_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="DTD folder does not exist"):
        find_texture_source(tmp_path / "nope")


def test_fallback_order():
    assert find_texture_source(None, allow=("skimage", "procedural")).name == "skimage"
    proc = find_texture_source(None, allow=("procedural",))
    assert proc.name == "procedural" and len(proc.images) == 16


def test_procedural_is_deterministic():
    a, b = procedural_textures(4, 32, seed=3), procedural_textures(4, 32, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], procedural_textures(4, 32, seed=4)[0])
