"""Patch features, 2-D projections and the projection-free separation number behind AAND's Fig. 6."""
import numpy as np
import pytest
import torch

from rdlib.projection import nearest_normal_distance, patch_features, project_2d, separation_auroc


def test_nearest_normal_distance_against_a_brute_force_loop():
    rng = np.random.default_rng(0)
    ref, q = rng.normal(size=(50, 6)), rng.normal(size=(9, 6))
    slow = [min(np.linalg.norm(r - x) for r in ref) for x in q]
    assert np.allclose(nearest_normal_distance(ref, q, batch=4), slow, atol=1e-5)


def test_separation_is_100_for_far_defects_50_for_identical_ones_and_nan_without_defects():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(200, 4))
    normal, far = rng.normal(size=(50, 4)), rng.normal(size=(20, 4)) + 20.0
    labels = np.r_[np.zeros(50), np.ones(20)].astype(int)
    assert separation_auroc(train, np.r_[normal, far], labels) == pytest.approx(100.0)
    same = np.r_[normal, normal[:20]]                                  # defect patches equal to normal ones
    assert 30.0 < separation_auroc(train, same, labels) < 70.0
    assert np.isnan(separation_auroc(train, normal, np.zeros(50, int)))


def test_patch_features_labels_follow_the_pooled_mask_and_subsampling_keeps_defects():
    masks = torch.zeros(2, 1, 8, 8)
    masks[0, :, :4, :4] = 1                                             # one quarter of image 0
    data = [{"image": torch.rand(3, 8, 8), "mask": masks[i]} for i in range(2)]

    def fn(x):                                                          # a 2×2 "level": per-quadrant means
        return [torch.nn.functional.avg_pool2d(x, 4)]

    x, y = patch_features(fn, data, level=0)
    assert x.shape == (8, 3) and y.tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    assert np.allclose(x[0], data[0]["image"][:, :4, :4].mean((1, 2)).numpy(), atol=1e-6)
    xs, ys = patch_features(fn, data, level=0, max_patches=4, seed=0)
    assert len(ys) == 4 and ys.sum() == 1


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_projections_are_two_dimensional_seeded_and_keep_separated_clusters_apart(method):
    rng = np.random.default_rng(2)
    x = np.r_[rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) + 12.0]
    a, b = project_2d(x, method, seed=3), project_2d(x, method, seed=3)
    assert a.shape == (80, 2) and np.allclose(a, b)
    centre0, centre1 = a[:40].mean(0), a[40:].mean(0)
    spread = max(a[:40].std(0).max(), a[40:].std(0).max())
    assert np.linalg.norm(centre0 - centre1) > 2 * spread
    with pytest.raises(ValueError, match="projection 'pca'"):
        project_2d(x, "pca")


def test_aand_separation_sentence_reads_the_sign_of_the_gain_per_level():
    import pandas as pd

    from rdlib.analysis import aand_separation_sentence

    def table(advanced):
        index = pd.MultiIndex.from_product([["level 1", "level 2"], ["vanilla F_T", "advanced F_A"]])
        values = [v for a in advanced for v in (70.0, 70.0 + a)]
        return pd.DataFrame({"separation AUROC (%)": values}, index=index)

    worse = aand_separation_sentence(table([-0.1, -0.7]), "coffee")
    assert "by -0.1 points at level 1, -0.7 points at level 2" in worse and "premise does not show here" in worse
    assert "better at every level" in aand_separation_sentence(table([0.5, 2.0]), "brick")
    assert "at some levels only" in aand_separation_sentence(table([0.5, -2.0]), "brick")
