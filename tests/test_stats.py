"""The verdict function on synthetic results whose answer is known."""
import numpy as np
import pandas as pd
import pytest

from rdlib.stats import bootstrap_interval, compare_variants, mean_interval_table


def grid(shift=0.0, noise=1.0, cats=5, seeds=3, seed=0, base_noise=5.0):
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(cats):
        difficulty = rng.normal(80, base_noise)                 # categories differ a lot, pairing removes it
        for s in range(seeds):
            common = rng.normal(0, noise)
            rows.append({"variant": "B", "category": f"c{c}", "seed": s, "i_auroc": difficulty + common + rng.normal(0, noise)})
            rows.append({"variant": "A", "category": f"c{c}", "seed": s,
                         "i_auroc": difficulty + common + shift + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_identical_variants_are_inconclusive():
    df = grid()
    same = pd.concat([df[df.variant == "B"], df[df.variant == "B"].assign(variant="A")])
    c = compare_variants(same, "A", "B", "i_auroc")
    assert c.diff == 0 and c.low == 0 and c.high == 0 and c.verdict == "inconclusive"
    assert compare_variants(grid(shift=0.0), "A", "B", "i_auroc").verdict == "inconclusive"


def test_a_shift_larger_than_the_noise_is_supported_or_contradicted():
    up = compare_variants(grid(shift=5.0), "A", "B", "i_auroc")
    assert up.verdict == "supported" and up.low > 0 and up.diff == pytest.approx(5.0, abs=1.5)
    down = compare_variants(grid(shift=-5.0), "A", "B", "i_auroc")
    assert down.verdict == "contradicted" and down.high < 0
    assert "**supported**" in up.sentence() and "5 categories × 3 seeds" in up.sentence()
    within = compare_variants(grid(shift=1.0, noise=0.1), "A", "B", "i_auroc", margin=2.0)
    assert within.verdict == "inconclusive"                       # real but smaller than the margin


def test_interval_covers_the_truth_at_about_the_nominal_rate():
    hits = 0
    for s in range(60):
        c = compare_variants(grid(shift=2.0, noise=2.0, cats=8, seeds=3, seed=100 + s), "A", "B", "i_auroc", reps=1000)
        hits += c.low <= 2.0 <= c.high
    assert hits >= 48                                             # ≥ 80 % of 60 (nominal 95 %; bootstrap is a bit narrow)


def test_failed_cells_are_left_out_and_the_table_says_so():
    df = grid()
    df.loc[(df.variant == "A") & (df.category == "c0"), "i_auroc"] = np.nan
    c = compare_variants(df, "A", "B", "i_auroc")
    assert c.cells == 12 and c.categories == 4
    t = mean_interval_table(df, ["i_auroc"])
    assert t.loc["A", "runs"] == "12/15" and "±" in t.loc["B", "i_auroc"]
    with pytest.raises(ValueError, match="variant 'C'"):
        compare_variants(df, "A", "C", "i_auroc")


def test_bootstrap_of_a_constant_is_that_constant():
    assert bootstrap_interval(np.full((4, 3), 2.5)) == (2.5, 2.5)


def test_long_table_feeds_compare_variants(tiny_benchmark, tmp_path):
    from rdlib.experiments import long_table, train_categories

    cr = train_categories("patch_knn", "ci", str(tiny_benchmark), ["brick", "coffee"], runs_dir=tmp_path)
    df = pd.concat([long_table(cr, "A"), long_table(cr, "B")])
    assert list(df.columns[:3]) == ["variant", "category", "seed"] and len(df) == 4
    c = compare_variants(df, "A", "B", "i_auroc")
    assert c.diff == 0 and c.verdict == "inconclusive"
