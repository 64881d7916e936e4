"""The verdict function on synthetic results whose answer is known."""
import numpy as np
import pandas as pd
import pytest
import torch

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


def test_plateau_step_by_hand():
    from rdlib.experiments import plateau_step

    steps = [50, 100, 150, 200, 250, 300]
    assert plateau_step(steps, [60, 70, 79, 80, 81, 80], tol=2.0) == 150       # settles at 80 from step 150
    assert plateau_step(steps, [80, 80, 80, 80, 80, 80]) == 50                  # flat from the first evaluation
    assert plateau_step(steps, [50, 60, 70, 80, 90, 100], tol=2.0) == 300       # still rising: only the last step
    assert plateau_step(steps[::-1], [80, 81, 80, 79, 70, 60]) == 150          # evaluations in any order
    assert plateau_step([50, 100], [1, 2]) is None


def test_learning_curves_read_what_the_loop_logged(tiny_benchmark, tmp_path):
    from rdlib.experiments import learning_curves, train_categories

    cr = train_categories("rd", "ci", tiny_benchmark, ["brick"], {"epochs": 2}, {"eval_every": 1, "batch_size": 3},
                          runs_dir=tmp_path, progress=False)
    lc = learning_curves(cr)
    assert list(lc.step) == [2, 4] and set(lc.category) == {"brick"}      # 6 images, batch 3: 2 steps an epoch
    assert {"i_auroc", "p_auroc", "loss"} <= set(lc.columns)
    assert lc.i_auroc.between(0, 100).all()


def test_level_distance_table_splits_training_normal_and_defective_images(tiny_benchmark, tmp_path):
    from rdlib.experiments import level_distance_table, train_categories
    from rdlib.runs import build_datasets

    run = train_categories("rd", "ci", tiny_benchmark, ["brick"], {"epochs": 1}, runs_dir=tmp_path).runs["brick"]
    table = level_distance_table(run)
    assert list(table.index) == ["training images", "normal test images", "defective test images"]
    assert list(table.columns) == ["level 1", "level 2", "level 3"]
    # the defective row, recomputed image by image from the trained model
    _, test = build_datasets(run.spec)
    model = run.load_method().model
    bad = [test[i]["image"] for i in range(len(test)) if test[i]["label"] == 1]
    expect = torch.cat([model.level_distances(b[None]) for b in bad]).mean(0)
    assert np.allclose(table.loc["defective test images"].to_numpy(), expect.numpy(), atol=1e-5)


def test_chapter_setup_merges_the_profile_and_generates_the_embedded_data_at_its_size(tmp_path, monkeypatch):
    from rdlib.experiments import chapter_setup
    from rdlib.methods import method_profile

    monkeypatch.setenv("RDLIB_DATA", str(tmp_path / "data"))
    s = chapter_setup("rd", "ci", {"epochs": 1}, {"seed": 5}, None, n_train=2, n_test_good=1, n_test_per_defect=1)
    assert s.options == {**method_profile("rd", "ci")["options"], "epochs": 1}
    assert s.fit == {**method_profile("rd", "ci")["fit"], "seed": 5}
    assert s.root.parent == tmp_path / "data" and f"{s.options['image_size']}px" in s.root.name
    assert s.device in ("cpu", "cuda") and s.data_name.endswith(f"({s.root.name})")
    given = chapter_setup("urd", "ci", data_root="/some/mvtec")
    assert given.root == "/some/mvtec" and given.data_name == "/some/mvtec"
    assert given.options == method_profile("urd", "ci")["options"]


def test_too_few_paired_runs_give_no_verdict_however_large_the_difference():
    """One or two (category, seed) cells have a degenerate interval: never supported or contradicted."""
    from rdlib.stats import MIN_CELLS

    df = grid(shift=20.0, noise=0.1, cats=1, seeds=MIN_CELLS - 1)
    c = compare_variants(df, "A", "B", "i_auroc")
    assert c.cells == MIN_CELLS - 1 and c.diff > 15 and c.verdict == "inconclusive"
    assert "no verdict" in c.sentence()
    enough = compare_variants(grid(shift=20.0, noise=0.1, cats=1, seeds=MIN_CELLS), "A", "B", "i_auroc")
    assert enough.verdict == "supported" and "no verdict" not in enough.sentence()


def test_claim_sentence_says_why_a_claim_was_not_judged():
    from rdlib.stats import claim_sentence

    df = grid(shift=5.0)
    assert claim_sentence(df, "A", "B", "i_auroc", "A wins").startswith("A wins: **supported**")
    missing = claim_sentence(df, "A", "C", "i_auroc", "A beats C")
    assert missing.startswith("A beats C: not judged (") and "variant 'C'" in missing


def test_mean_intervals_are_the_numbers_behind_the_table():
    from rdlib.stats import mean_intervals

    df = grid()
    v = mean_intervals(df, ["i_auroc"]).set_index("variant")
    for variant in ("A", "B"):
        cells = df[df.variant == variant].pivot_table(index="category", columns="seed", values="i_auroc").to_numpy()
        assert v.loc[variant, "mean"] == pytest.approx(cells.mean())
        lo, hi = bootstrap_interval(cells)
        assert (v.loc[variant, "low"], v.loc[variant, "high"]) == pytest.approx((lo, hi))
        assert mean_interval_table(df, ["i_auroc"]).loc[variant, "i_auroc"] == f"{cells.mean():.1f} ± {(hi - lo) / 2:.1f}"
