import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from metric_references import aupro_pooled_reference, auroc_pairs, average_precision_loop, pro_rd_reference
from rdlib.metrics import aupro_pooled, auroc, average_precision, evaluate_maps, pro_rd_per_image


def test_hand_computed_auroc_and_ap():
    s = [0.1, 0.4, 0.35, 0.8]
    y = [0, 0, 1, 1]
    assert auroc(s, y) == 0.75                              # pairs: (0.35>0.1), (0.8>both), 0.35<0.4
    assert average_precision(s, y) == pytest.approx((1 / 2) * 1 + (1 / 2) * (2 / 3))
    assert auroc([1, 1, 1, 1], y) == 0.5                    # all ties count ½


@pytest.mark.parametrize("seed", range(5))
def test_auroc_ap_against_references(seed):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 12, 300).astype(np.float32)         # many ties
    y = rng.random(300) < 0.35
    assert auroc(s, y) == pytest.approx(auroc_pairs(s, y), abs=1e-12)
    assert auroc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(s, y) == pytest.approx(average_precision_loop(s, y), abs=1e-12)
    assert average_precision(s, y) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_single_class_is_an_error():
    with pytest.raises(ValueError, match="both positive and negative"):
        auroc([0.1, 0.2], [1, 1])


def _masks_maps(rng, n=4, size=12, levels=15):
    masks = np.zeros((n, size, size), bool)
    masks[0, 2:5, 2:6] = True
    masks[0, 8:10, 8:11] = True                              # two regions in one image
    masks[2, 5:9, 1:3] = True
    masks[2, 0, 11] = True                                   # a one-pixel region
    maps = rng.integers(0, levels, (n, size, size)).astype(np.float32) / 3 + masks * rng.random()
    return masks, maps


@pytest.mark.parametrize("seed", range(6))
def test_pooled_aupro_against_reference(seed):
    masks, maps = _masks_maps(np.random.default_rng(seed))
    assert aupro_pooled(masks, maps) == pytest.approx(aupro_pooled_reference(masks, maps), abs=1e-12)
    assert aupro_pooled(masks, maps, 0.1) == pytest.approx(aupro_pooled_reference(masks, maps, 0.1), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_rd_pro_against_the_official_loop(seed):
    masks, maps = _masks_maps(np.random.default_rng(seed), levels=1000)
    assert pro_rd_per_image(masks, maps) == pytest.approx(pro_rd_reference(masks, maps), abs=1e-12)


def test_pooled_aupro_hand_computed():
    """One 1×4 image: region {0,1}, normals {2,3}. Scores 4,2,3,1 → curve (0,0),(0,.5),(.5,.5),(.5,1),(1,1)."""
    masks = np.array([[[1, 1, 0, 0]]], bool)
    maps = np.array([[[4.0, 2.0, 3.0, 1.0]]])
    # up to FPR 1: area 0.5*0.5 + 0.5*1 = 0.75; normalised by max_fpr=1
    assert aupro_pooled(masks, maps, max_fpr=1.0) == pytest.approx(0.75)
    # up to FPR 0.3: PRO is 0.5 on (0, 0.3] → area 0.15, /0.3 = 0.5
    assert aupro_pooled(masks, maps, max_fpr=0.3) == pytest.approx(0.5)


def test_perfect_maps():
    masks, _ = _masks_maps(np.random.default_rng(0))
    maps = masks.astype(np.float32) + 0.01 * np.random.default_rng(1).random(masks.shape)
    labels = masks.reshape(len(masks), -1).any(1)
    m = evaluate_maps(labels, maps.reshape(len(maps), -1).max(1), masks, maps)
    assert m["p_auroc"] == pytest.approx(100) and m["aupro"] == pytest.approx(100) and m["i_auroc"] == pytest.approx(100)
    assert m["pro_rd"] == pytest.approx(100)            # the official code gives NaN here (0/0 rescaling)


def test_pooled_aupro_keeps_a_tie_group_whole_at_the_fpr_cut():
    """100 normal pixels: 10 at 1.0, 90 at 0.5; the region at 0.5. The 0.3 cut falls inside the 0.5 group: the curve
    point of that group is at FPR 1.0, not 0.31 (hand-computed: (0.1, 0) → (1, 1) at 0.3 gives 0.2·(2/9)/2 / 0.3)."""
    normal = np.r_[np.full(10, 1.0), np.full(90, 0.5)]
    maps = np.r_[normal, np.full(20, 0.5)].reshape(1, 1, 120)
    masks = np.r_[np.zeros(100, bool), np.ones(20, bool)].reshape(1, 1, 120)
    expected = 0.2 * (0.2 / 0.9) / 2 / 0.3
    assert aupro_pooled(masks, maps) == pytest.approx(expected, abs=1e-12)
    assert aupro_pooled_reference(masks, maps) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("case", ["quantised", "constant", "two_levels"])
def test_every_metric_is_exact_under_heavy_ties(case):
    rng = np.random.default_rng(7)
    masks, maps = _masks_maps(rng, n=6, size=16, levels=1000)
    if case == "quantised":                                   # as maps saved to 8-bit PNG, with few levels
        maps = np.round(maps / maps.max() * 7) / 7
    elif case == "constant":
        maps = np.full_like(maps, 0.25)
    else:
        maps = (maps > np.median(maps)).astype(np.float32)
    labels = masks.reshape(len(masks), -1).any(1)
    scores = maps.reshape(len(maps), -1).max(1)
    assert auroc(maps, masks) == pytest.approx(auroc_pairs(maps, masks), abs=1e-12)
    assert average_precision(maps, masks) == pytest.approx(average_precision_loop(maps, masks), abs=1e-12)
    assert auroc(scores, labels) == pytest.approx(auroc_pairs(scores, labels), abs=1e-12)
    assert average_precision(scores, labels) == pytest.approx(average_precision_loop(scores, labels), abs=1e-12)
    for max_fpr in (0.3, 0.05):
        assert aupro_pooled(masks, maps, max_fpr) == pytest.approx(aupro_pooled_reference(masks, maps, max_fpr), abs=1e-12)
    if case == "constant":                                    # one threshold: (0,0) → (1,1); up to 0.3 the line y = x
        assert aupro_pooled(masks, maps) == pytest.approx(0.15, abs=1e-12)
        assert np.isnan(pro_rd_per_image(masks, maps))        # no curve in any image: NaN, not a made-up number


def test_auroc_half_width_by_hand_and_against_simulation():
    from rdlib.metrics import auroc_half_width

    # A = 0.9, 150 defective and 80 normal images: Q1 = 0.81818, Q2 = 0.85263,
    # Var = (0.09 + 149 * 0.0081818 + 79 * 0.042632) / 12000 = 3.8975e-4, 1.96 * SE = 3.87 points
    assert auroc_half_width(90.0, 150, 80) == pytest.approx(3.870, abs=0.005)
    assert auroc_half_width(100.0, 150, 80) == 0.0
    # against simulation: binormal scores with AUROC ≈ 0.9 (d' = 1.8); the spread of the AUROC over many draws
    rng = np.random.default_rng(0)
    draws = [100 * auroc(np.r_[rng.normal(1.8, 1, 150), rng.normal(0, 1, 80)], np.r_[np.ones(150), np.zeros(80)])
             for _ in range(400)]
    mean = np.mean(draws)
    assert 1.96 * np.std(draws) == pytest.approx(auroc_half_width(mean, 150, 80), rel=0.2)
