import csv
import os

import numpy as np
import pytest
from PIL import Image

from rdlib.__main__ import main as cli
from rdlib.data import AnomalyDataset, DataError, detect_format, read_dataset, verify


def _img(path, size=(16, 16), value=128, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size[1], size[0], 3) if mode == "RGB" else (size[1], size[0]), value, np.uint8)
    Image.fromarray(arr).save(path)


def _mask(path, size=(16, 16), values=(0, 255)):
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((size[1], size[0]), np.uint8)
    m[2:6, 2:6] = values[1]
    if len(values) > 2:
        m[9:12, 9:12] = values[2]
    Image.fromarray(m).save(path)


@pytest.fixture
def mvtec(tmp_path):
    c = tmp_path / "widget"
    for i in range(3):
        _img(c / "train/good" / f"{i:03d}.png", mode="L")      # grayscale on disk
    _img(c / "test/good/000.png")
    _img(c / "test/crack/000.png")
    _mask(c / "ground_truth/crack/000_mask.png")
    return tmp_path


def test_mvtec_reader(mvtec):
    t = read_dataset(mvtec, "widget")
    assert detect_format(mvtec) == "mvtec"
    assert list(t.split.value_counts().sort_index()) == [2, 3]
    bad = t[t.label == 1].iloc[0]
    assert bad.defect == "crack" and bad.mask_path.endswith("ground_truth/crack/000_mask.png")
    ds = AnomalyDataset(t, image_size=8)
    item = ds[0]
    assert item["image"].shape == (3, 8, 8) and item["image"].max() <= 1   # grayscale → RGB
    m = ds[int(np.flatnonzero(t.label.values)[0])]["mask"]
    assert m.shape == (1, 8, 8) and set(m.unique().tolist()) <= {0.0, 1.0} and m.sum() > 0


def test_btad_reader(tmp_path):
    c = tmp_path / "01"
    for i in range(2):
        _img(c / "train/ok" / f"{i:04d}.bmp")
    _img(c / "test/ok/0000.bmp")
    _img(c / "test/ko/0001.bmp")
    _mask(c / "ground_truth/ko/0001.png")                     # no _mask suffix
    assert detect_format(tmp_path) == "btad"
    t = read_dataset(tmp_path, "01")
    assert t.label.sum() == 1 and t[t.label == 1].mask_path.iloc[0].endswith("ground_truth/ko/0001.png")
    counts = verify(tmp_path)
    assert counts.images.sum() == 4


def test_visa_reader_binarises_instance_masks(tmp_path):
    rows = [("candle", "train", "normal", "candle/Data/Images/Normal/000.JPG", ""),
            ("candle", "test", "normal", "candle/Data/Images/Normal/001.JPG", ""),
            ("candle", "test", "anomaly", "candle/Data/Images/Anomaly/000.JPG", "candle/Data/Masks/Anomaly/000.png")]
    for r in rows:
        _img(tmp_path / r[3])
    _mask(tmp_path / rows[2][4], values=(0, 1, 2))            # instance ids 1 and 2
    (tmp_path / "split_csv").mkdir()
    with open(tmp_path / "split_csv/1cls.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["object", "split", "label", "image", "mask"])
        w.writerows(rows)
    assert detect_format(tmp_path) == "visa"
    t = read_dataset(tmp_path, "candle")
    assert list(t.label) == [0, 0, 1]
    m = AnomalyDataset(t, 16, mask_interpolation="nearest")[2]["mask"]
    assert m.sum() == 16 + 9                                  # both instances count as anomalous
    assert verify(tmp_path).images.sum() == 3


def test_verify_embedded_and_cli(tiny_benchmark, capsys):
    counts = verify(tiny_benchmark)
    assert set(counts.category) == {"brick", "coffee"}
    assert cli(["data", "verify", str(tiny_benchmark)]) == 0
    assert "OK: 2 categories" in capsys.readouterr().out


@pytest.mark.parametrize("breakage, expected", [
    ("missing_mask", "missing mask"),
    ("extra_mask", "extra mask"),
    ("unreadable", "unreadable image"),
    ("size_mismatch", "differs from image size"),
    ("empty", "empty category"),
    ("no_test", "missing test folder"),
])
def test_verify_errors_name_the_path(mvtec, breakage, expected, capsys):
    c = mvtec / "widget"
    if breakage == "missing_mask":
        os.remove(c / "ground_truth/crack/000_mask.png")
        culprit = "000_mask.png"
    elif breakage == "extra_mask":
        _mask(c / "ground_truth/crack/007_mask.png")
        culprit = "007_mask.png"
    elif breakage == "unreadable":
        (c / "test/good/000.png").write_bytes(b"not a png")
        culprit = "test/good/000.png"
    elif breakage == "size_mismatch":
        _mask(c / "ground_truth/crack/000_mask.png", size=(20, 16))
        culprit = "000_mask.png"
    elif breakage == "empty":
        for p in (c / "train/good").iterdir():
            p.unlink()
        culprit = "widget"
    else:
        import shutil

        shutil.rmtree(c / "test")
        culprit = "widget/test"
    with pytest.raises(DataError, match=expected) as e:
        verify(mvtec)
    assert culprit in str(e.value)
    assert cli(["data", "verify", str(mvtec)]) == 1
    assert culprit in capsys.readouterr().err


def test_wrong_root(tmp_path):
    with pytest.raises(DataError, match="no categories found"):
        verify(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        read_dataset(tmp_path / "nope", "x")
