"""Noise robustness (RD-RE Fig. 8): the noisy test set against its definition, and the evaluation table."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import Dataset

from rdlib.robustness import GaussianNoise, noise_robustness
from rdlib.runs import RunSpec, get_or_train


class Grey(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"image": torch.full((3, 64, 64), 0.5), "mask": torch.zeros(1, 64, 64), "label": i % 2}


def test_noise_has_the_requested_standard_deviation_and_leaves_masks_and_labels():
    noisy = GaussianNoise(Grey(), sigma=0.05, seed=3)
    for i in range(len(noisy)):
        item = noisy[i]
        residual = item["image"] - 0.5                    # no clipping at 0.5 ± 10σ
        assert abs(float(residual.std()) - 0.05) < 0.003 and abs(float(residual.mean())) < 0.003
        assert item["label"] == i % 2 and torch.equal(item["mask"], torch.zeros(1, 64, 64))


def test_noise_is_the_same_at_every_call_differs_per_item_and_seed_and_zero_sigma_is_the_identity():
    noisy = GaussianNoise(Grey(), sigma=0.01, seed=0)
    assert torch.equal(noisy[1]["image"], noisy[1]["image"])
    assert not torch.equal(noisy[1]["image"], noisy[2]["image"])
    assert not torch.equal(noisy[1]["image"], GaussianNoise(Grey(), sigma=0.01, seed=1)[1]["image"])
    assert torch.equal(GaussianNoise(Grey(), sigma=0.0)[0]["image"], Grey()[0]["image"])


def test_clipping_keeps_images_in_the_unit_range():
    img = GaussianNoise(Grey(), sigma=2.0)[0]["image"]
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0 and float((img == 0).float().mean()) > 0.2


def test_a_negative_sigma_is_refused_by_name():
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(Grey(), sigma=-0.1)


def test_noise_robustness_clean_row_matches_a_noisy_evaluation_at_vanishing_sigma_and_heavy_noise_hurts(
        tiny_benchmark, tmp_path):
    """The σ = 0 row is read from the run's own evaluation; evaluating through the noisy set at σ = 1e-9 must give
    the same metrics, so the two paths are the same measurement (up to the inference fast path's float rounding:
    the run was scored by the plain path, the noisy sets by the folded, channels-last copy, ~1e-5 points apart)."""
    run = get_or_train(RunSpec.from_profile("patch_knn", "ci", str(tiny_benchmark), "brick"), tmp_path, progress=False)
    table = noise_robustness(run, [1e-9, 5.0])
    assert list(table.sigma) == [0.0, 1e-9, 5.0]
    for metric in ("i_auroc", "p_auroc", "p_ap"):
        assert table[metric].iloc[1] == pytest.approx(table[metric].iloc[0], abs=1e-3)
    # σ = 5 turns every image into clipped noise: the maps no longer follow the masks
    assert table.p_auroc.iloc[2] < table.p_auroc.iloc[0] and np.isfinite(table.p_auroc).all()


def test_noise_table_means_over_categories_under_readable_headers():
    from rdlib.robustness import noise_table

    noise = pd.DataFrame([{"method": m, "category": c, "sigma": s, "i_auroc": v, "p_auroc": 2 * v, "p_ap": 0.0}
                          for m, base in (("RD", 60.0), ("RD-RE", 70.0)) for c, off in (("a", 0.0), ("b", 10.0))
                          for s, v in ((0.0, base + off), (0.005, base + off - 4))])
    table = noise_table(noise)
    assert list(table.index) == ["σ = 0", "σ = 0.005"]
    assert table.loc["σ = 0.005", ("I-AUROC (%)", "RD-RE")] == 71.0                 # (70 − 4 + 80 − 4) / 2
    assert table.loc["σ = 0", ("P-AUROC (%)", "RD")] == 130.0
    assert not [c for level in table.columns.levels for c in level if "_" in c]     # no code-style header left
