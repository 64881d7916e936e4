"""Property-based fuzzing of the dataset readers: random MVTec-layout trees built from a grammar of faults go through
``verify``, ``read_dataset`` and the dataset's ``__getitem__``. The only allowed outcomes are a correct table (and
correct pixels) or a :class:`DataError` that names the offending path. Every example is classified per fault class
as tried / uncaught (any other exception) / silent (accepted although wrong, or refused although fine); the
counts are printed at the end of the test run and must be zero for the last two."""
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from rdlib.data import AnomalyDataset, DataError, read_dataset, verify

STATS: dict[str, dict[str, int]] = defaultdict(lambda: {"tried": 0, "uncaught": 0, "silent": 0})
ERROR_FAULTS = {"missing_mask", "extra_mask", "missized_mask", "unreadable_image", "zero_byte_image",
                "broken_symlink", "float_out_of_range"}
OK_FAULTS = {"empty_mask", "odd_mode", "tiny_image", "stray_file", "upper_ext", "symlink", "unicode_name",
             "sixteen_bit"}
ODD_MODES = ["1", "L", "LA", "P", "RGBA", "CMYK", "I;16"]


def _save(path: Path, arr: np.ndarray, mode: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    im.save(path, format="TIFF" if mode == "CMYK" else "PNG")


def build_tree(root: Path, faults: list[str], mode: str, size: tuple[int, int]):
    """A small category with the given faults; returns (expected error paths, expected image count, checks)."""
    cat = root / "widget"
    w, h = size
    grey = np.full((h, w, 3), 100, np.uint8)
    for i in range(2):
        _save(cat / "train/good" / f"{i:03d}.png", grey)
    _save(cat / "test/good/000.png", grey)
    mask = np.zeros((h, w), np.uint8)
    mask[: max(1, h // 2), : max(1, w // 2)] = 255
    _save(cat / "test/crack/000.png", grey)
    _save(cat / "ground_truth/crack/000_mask.png", mask)
    errors, count, checks, empty = [], 4, [], []           # 2 train, 1 good test, 1 defective test
    for f in faults:
        if f == "missing_mask":
            _save(cat / "test/crack/001.png", grey)
            errors.append(cat / "ground_truth/crack/001_mask.png")
            count += 1
        elif f == "extra_mask":
            _save(cat / "ground_truth/crack/077_mask.png", mask)
            errors.append(cat / "ground_truth/crack/077_mask.png")
        elif f == "missized_mask":
            _save(cat / "test/dent/000.png", grey)
            _save(cat / "ground_truth/dent/000_mask.png", np.zeros((h + 1, w + 2), np.uint8) + 255)
            errors.append(cat / "ground_truth/dent/000_mask.png")
            count += 1
        elif f == "unreadable_image":
            (cat / "train/good/bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
            errors.append(cat / "train/good/bad.png")
        elif f == "zero_byte_image":
            (cat / "test/good/empty.png").write_bytes(b"")
            errors.append(cat / "test/good/empty.png")
        elif f == "broken_symlink":
            os.symlink(cat / "nowhere.png", cat / "train/good/link_broken.png")
            errors.append(cat / "train/good/link_broken.png")
        elif f == "float_out_of_range":
            Image.fromarray(np.full((h, w), 1e5, np.float32)).save(cat / "train/good/float.tif")
            errors.append(cat / "train/good/float.tif")
        elif f == "empty_mask":
            _save(cat / "test/hole/000.png", grey)
            _save(cat / "ground_truth/hole/000_mask.png", np.zeros((h, w), np.uint8))
            empty.append(str(cat / "ground_truth/hole/000_mask.png"))
            count += 1
        elif f == "odd_mode":
            _save(cat / "train/good/odd.png" if mode != "CMYK" else cat / "train/good/odd.tif",
                  np.full((h, w, 3), 200, np.uint8), mode)
            count += 1
        elif f == "sixteen_bit":
            Image.fromarray(np.full((h, w), 40000, np.uint16)).save(cat / "train/good/deep.png")
            checks.append(("train/good/deep.png", 40000 / 65535))
            count += 1
        elif f == "tiny_image":
            _save(cat / "train/good/tiny.png", np.full((1, 1, 3), 7, np.uint8))
            count += 1
        elif f == "stray_file":
            (cat / "train/good/notes.txt").write_text("not an image")
            (cat / "test/crack/.DS_Store").write_bytes(b"\x00\x01")
        elif f == "upper_ext":
            _save(cat / "test/crack/002.PNG", grey)
            _save(cat / "ground_truth/crack/002_mask.png", mask)
            count += 1
        elif f == "symlink":
            os.symlink(cat / "train/good/000.png", cat / "train/good/linked.png")
            count += 1
        elif f == "unicode_name":
            _save(cat / "train/good" / "ñandú_测试.png", grey)
            count += 1
    return errors, count, checks, empty


def classify(tmp: Path, faults: list[str], mode: str, size) -> str:
    """'ok' (correct), 'silent' (wrong outcome without an error) or 'uncaught' (an exception that is not DataError)."""
    errors, count, checks, empty = build_tree(tmp, faults, mode, size)
    try:
        counts = verify(tmp)
        table = read_dataset(tmp, "widget")
        ds = AnomalyDataset(table, image_size=8)
        items = [ds[i] for i in range(len(ds))]
    except DataError as e:
        if not errors:
            return "silent"                                    # refused a tree that is fine
        return "ok" if any(str(p) in str(e) for p in errors) else "silent"
    except Exception:  # noqa: BLE001 - anything else is the failure this test hunts
        return "uncaught"
    if errors:
        return "silent"                                        # accepted a broken tree
    if int(counts.images.sum()) != count or len(table) != count:
        return "silent"
    if sorted(counts.attrs.get("empty_masks", [])) != sorted(empty):
        return "silent"
    for it in items:
        x = it["image"]
        if x.shape != (3, 8, 8) or not bool(((x >= 0) & (x <= 1)).all()) or it["mask"].shape != (1, 8, 8):
            return "silent"
    for rel, value in checks:                                  # high-bit-depth pixels rescaled, not clipped
        i = table.index[table.image_path.str.endswith(rel)][0]
        if abs(float(ds[int(i)]["image"].mean()) - value) > 1 / 255:
            return "silent"
    return "ok"


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(faults=st.lists(st.sampled_from(sorted(ERROR_FAULTS | OK_FAULTS)), min_size=1, max_size=3, unique=True),
       mode=st.sampled_from(ODD_MODES), size=st.tuples(st.integers(1, 12), st.integers(1, 12)))
def test_fuzzed_trees_give_a_correct_table_or_an_error_naming_the_path(tmp_path_factory, faults, mode, size):
    tmp = tmp_path_factory.mktemp("fuzz")
    outcome = classify(tmp, faults, mode, size)
    for f in faults:
        STATS[f]["tried"] += 1
        if outcome != "ok":
            STATS[f][outcome] += 1
    assert outcome == "ok", f"faults {faults}, mode {mode}, size {size}: {outcome}"


@pytest.mark.parametrize("fault", sorted(ERROR_FAULTS | OK_FAULTS))
def test_each_fault_class_alone(tmp_path, fault):
    outcome = classify(tmp_path, [fault], "I;16", (5, 3))
    STATS[fault]["tried"] += 1
    if outcome != "ok":
        STATS[fault][outcome] += 1
    assert outcome == "ok", f"{fault}: {outcome}"


def test_cli_verify_lists_empty_masks(tmp_path, capsys):
    from rdlib.__main__ import main

    build_tree(tmp_path, ["empty_mask"], "L", (6, 6))
    assert main(["data", "verify", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "1 anomalous image(s) have an empty mask" in captured.err and "hole/000_mask.png" in captured.err
    assert "(1 with an empty mask)" in captured.out
