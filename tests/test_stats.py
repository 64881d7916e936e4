"""Intervals and the verdict function (rdlib.stats, rdlib.claims.judge) on synthetic results whose answer is known.

The calibration tests simulate the designs the book judges claims at and pass every simulated table through
``rdlib.claims.judge`` itself: with no effect at all, and with effects that differ by category but average zero,
at most 5 % of the verdicts may be "supported" or "contradicted" (up to Monte-Carlo error), and the 95 % interval
must cover a known effect at least 93 % of the time. The same check applied to the two-level percentile bootstrap
the book used until session 13 fails at 1 category × 3 seeds (about 25 % false verdicts): the test can fail.
"""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from rdlib.claims import judge
from rdlib.stats import detectable_effect, interval, mean_interval_table, mean_intervals, t_interval

# (categories, seeds) the book judges at: chapter ablations on one category × 3 seeds; main runs on 5 categories
# × 1 seed; the comparison on 5 × 3; and 3 × 3 for a sweep over three categories.
DESIGNS = [(1, 3), (3, 3), (5, 1), (5, 3)]
REPS = 1000
ALPHA = 0.05
SLACK = 2.33 * math.sqrt(ALPHA * (1 - ALPHA) / REPS)          # one-sided 99 % Monte-Carlo allowance (~1.6 points)


def grid(shift=0.0, noise=1.0, cats=5, seeds=3, seed=0, base_noise=5.0, category_sd=0.0, rng=None):
    """Variants A and B on cats × seeds cells: categories differ a lot in difficulty (pairing removes it), A − B is
    ``shift`` plus a per-category effect N(0, category_sd²) plus cell noise. Returns the table and each category's
    true effect."""
    rng = rng or np.random.default_rng(seed)
    rows, effects = [], {}
    for c in range(cats):
        difficulty = rng.normal(80, base_noise)
        effects[f"c{c}"] = shift + rng.normal(0, category_sd) if category_sd else shift
        for s in range(seeds):
            common = rng.normal(0, noise)
            rows.append({"variant": "B", "category": f"c{c}", "seed": s, "i_auroc": difficulty + common + rng.normal(0, noise)})
            rows.append({"variant": "A", "category": f"c{c}", "seed": s,
                         "i_auroc": difficulty + common + effects[f"c{c}"] + rng.normal(0, noise)})
    df = pd.DataFrame(rows)
    df.attrs["effects"] = effects
    return df


def _judge_interval(df):
    v = judge(df, "A", "B", "i_auroc", "A beats B")
    return v.low, v.high


def _percentile_bootstrap(df, reps=1000):
    """The procedure the book used until session 13 (kept here only to show that the calibration check catches
    it): resample categories, then seeds within them, and take the 2.5 / 97.5 percentiles of the mean."""
    w = df.pivot_table(index=["category", "seed"], columns="variant", values="i_auroc")
    d = (w["A"] - w["B"]).unstack("seed").to_numpy()
    rng = np.random.default_rng(0)
    n_cat, n_seed = d.shape
    sample = d[rng.integers(0, n_cat, (reps, n_cat))[..., None], rng.integers(0, n_seed, (reps, n_cat, n_seed))]
    lo, hi = np.percentile(sample.reshape(reps, -1).mean(1), [2.5, 97.5])
    return lo, hi


def _rates(interval_of, cats, seeds, shift=0.0, category_sd=0.0, reps=REPS, seed=0):
    """Over ``reps`` simulated tables: the share of decisive verdicts (the interval excludes 0) and the share of
    intervals that cover the truth (the shift for several categories; the one category's own effect otherwise)."""
    rng = np.random.default_rng(seed)
    decisive = covered = 0
    for _ in range(reps):
        df = grid(shift, noise=2.0, cats=cats, seeds=seeds, category_sd=category_sd, rng=rng)
        lo, hi = interval_of(df)
        truth = shift if cats > 1 else df.attrs["effects"]["c0"]
        decisive += lo > 0 or hi < 0
        covered += lo <= truth <= hi
    return decisive / reps, covered / reps


@pytest.mark.parametrize("cats,seeds", DESIGNS)
def test_no_effect_gives_at_most_five_percent_false_verdicts(cats, seeds):
    false, cover = _rates(_judge_interval, cats, seeds)
    assert false <= ALPHA + SLACK, f"{cats} × {seeds}: {false:.1%} false verdicts"
    assert cover >= 0.93


@pytest.mark.parametrize("cats,seeds", [d for d in DESIGNS if d[0] > 1])
def test_effects_that_differ_by_category_but_average_zero_are_not_called(cats, seeds):
    """Categories gain or lose by the change (sd 2 points between categories) and the mean gain is zero: a claim
    about categories must not be called more than 5 % of the time (a t-interval over all cells would be)."""
    false, _ = _rates(_judge_interval, cats, seeds, category_sd=2.0, seed=1)
    assert false <= ALPHA + SLACK, f"{cats} × {seeds}: {false:.1%} false verdicts"


@pytest.mark.parametrize("cats,seeds", DESIGNS)
def test_a_known_effect_is_covered_at_least_93_percent_of_the_time(cats, seeds):
    """A mean effect of 2 points that differs by category (sd 1.5); for one category the truth is its own effect."""
    _, cover = _rates(_judge_interval, cats, seeds, shift=2.0, category_sd=1.5, seed=2)
    assert cover >= 0.93, f"{cats} × {seeds}: coverage {cover:.1%}"


def test_the_calibration_check_fails_the_percentile_bootstrap_at_one_category_and_three_seeds():
    false, _ = _rates(_percentile_bootstrap, 1, 3, reps=400, seed=3)
    assert false > ALPHA + 0.1                                   # about 25 %: [min, max] of three differences


def test_identical_variants_are_inconclusive_and_a_large_shift_is_called():
    df = grid()
    same = pd.concat([df[df.variant == "B"], df[df.variant == "B"].assign(variant="A")])
    v = judge(same, "A", "B", "i_auroc", "A beats B")
    assert v.diff == 0 and v.low == 0 and v.high == 0 and v.verdict == "inconclusive"
    up = judge(grid(shift=5.0), "A", "B", "i_auroc", "A beats B")
    assert up.verdict == "supported" and up.low > 0 and up.diff == pytest.approx(5.0, abs=1.5)
    assert up.sentence.startswith("A beats B: **supported** (Δ = +")
    down = judge(grid(shift=-5.0), "A", "B", "i_auroc", "A beats B")
    assert down.verdict == "contradicted" and down.high < 0
    within = judge(grid(shift=1.0, noise=0.1), "A", "B", "i_auroc", "A beats B", margin=2.0)
    assert within.verdict == "inconclusive" and 0.5 < within.diff < 1.5 and "margin ±2" in within.sentence


def test_the_interval_is_the_t_interval_over_category_means_by_hand():
    """5 categories × 3 seeds: the unit is the category; with one category: its seeds, and the verdict says so."""
    df = grid(shift=1.0, noise=2.0, seed=7)
    w = df.pivot_table(index=["category", "seed"], columns="variant", values="i_auroc")
    per_cat = (w["A"] - w["B"]).groupby(level="category").mean().to_numpy()
    half = 2.7764451051977987 * per_cat.std(ddof=1) / math.sqrt(5)        # t_{0.975, 4}
    v = judge(df, "A", "B", "i_auroc", "A beats B")
    assert v.unit == "category" and v.low == pytest.approx(per_cat.mean() - half) and v.high == pytest.approx(per_cat.mean() + half)
    assert v.design == "5 categories × 3 seeds"
    one = df[df.category == "c2"]
    d = (one[one.variant == "A"].i_auroc.to_numpy() - one[one.variant == "B"].i_auroc.to_numpy())
    h1 = 4.302652729911275 * d.std(ddof=1) / math.sqrt(3)                 # t_{0.975, 2}
    v1 = judge(one, "A", "B", "i_auroc", "A beats B")
    assert v1.unit == "seed" and v1.low == pytest.approx(d.mean() - h1) and v1.categories == ("c2",)
    assert "for c2 only" in v1.sentence and v1.design.startswith("c2 only × 3 seeds")


def test_the_smallest_detectable_effect_is_detected_80_percent_of_the_time():
    """At 5 × 3 with the spread fixed, a true effect equal to the design's detectable effect is called ~80 %."""
    rng = np.random.default_rng(11)
    mdes = [judge(grid(0.0, noise=2.0, rng=rng), "A", "B", "i_auroc", "x").detectable for _ in range(200)]
    mde = float(np.median(mdes))
    hits = sum(judge(grid(mde, noise=2.0, rng=rng), "A", "B", "i_auroc", "x").verdict == "supported"
               for _ in range(400))
    assert 0.65 <= hits / 400 <= 0.95
    assert np.isnan(detectable_effect(t_interval([1.0], "seed")))


def test_a_verdict_names_its_design_budget_and_what_it_could_detect():
    df = grid(shift=0.3, noise=2.0, cats=1, seeds=3, seed=4)
    df["image_size"] = 64
    df["steps"] = np.where(df.variant == "A", 100, 40)
    v = judge(df, "A", "B", "i_auroc", "A beats B (Table 5)", paper_claim=True, paper_diff=0.8)
    assert v.design == "c0 only × 3 seeds, 64², 100 vs 40 steps"
    assert v.verdict == "inconclusive" and v.undetectable
    assert ", at this budget" in v.sentence and "different numbers of optimizer steps" in v.sentence
    assert "could not have confirmed it" in v.sentence and v.label == "inconclusive (c0 only, at this budget, below detectable)"
    same = judge(df.assign(steps=50), "A", "B", "i_auroc", "A beats B")
    assert same.design.endswith("50 steps each") and "different numbers" not in same.sentence


def test_failed_cells_are_left_out_and_too_little_is_not_judged():
    df = grid(shift=3.0, cats=2, seeds=3)
    df.loc[(df.variant == "A") & (df.category == "c1") & (df.seed == 0), "i_auroc"] = np.nan
    v = judge(df, "A", "B", "i_auroc", "A beats B")
    assert v.categories == ("c0", "c1") and v.seeds == "2–3" and v.design.startswith("2 categories × 2–3 seeds")
    lone = judge(grid(shift=20.0, noise=0.1, cats=1, seeds=1), "A", "B", "i_auroc", "A wins")
    assert lone.verdict == "not judged" and "no spread" in lone.sentence
    missing = judge(df, "A", "C", "i_auroc", "A beats C")
    assert missing.verdict == "not judged" and missing.sentence == "A beats C: not judged (no runs of 'C' in the table)."
    t = mean_interval_table(df, ["i_auroc"])
    assert t.loc["A", "runs"] == "5/6" and t.loc["B", "runs"] == "6/6"


def test_mean_intervals_by_hand():
    """The mean of a variant over 4 categories × 3 seeds: t-interval over the 4 category means."""
    df = grid(shift=2.0, cats=4, seeds=3, seed=9)
    v = mean_intervals(df, ["i_auroc"]).set_index("variant")
    for variant in ("A", "B"):
        cells = df[df.variant == variant].pivot_table(index="category", columns="seed", values="i_auroc")
        m = cells.mean(axis=1).to_numpy()
        half = 3.182446305284263 * m.std(ddof=1) / 2                       # t_{0.975, 3} · sd / √4
        assert v.loc[variant, "mean"] == pytest.approx(m.mean()) and v.loc[variant, "high"] == pytest.approx(m.mean() + half)
        assert v.loc[variant, "unit"] == "category"
        assert mean_interval_table(df, ["i_auroc"]).loc[variant, "i_auroc"] == f"{m.mean():.1f} ± {half:.1f}"
    one = interval(df[df.variant == "A"].set_index(["category", "seed"]).i_auroc.loc[["c0"]])
    assert one.unit == "seed" and one.n == 3


def test_long_table_carries_the_design_columns(tiny_benchmark, tmp_path):
    from rdlib.experiments import long_table, train_categories

    cr = train_categories("patch_knn", "ci", str(tiny_benchmark), ["brick", "coffee"], runs_dir=tmp_path)
    df = pd.concat([long_table(cr, "A"), long_table(cr, "B")])
    assert list(df.columns[:3]) == ["variant", "category", "seed"] and len(df) == 4
    assert set(df.seed) == {111}                                                  # each run's own seed (ci profile)
    assert {"image_size", "steps", "key"} <= set(df.columns)
    v = judge(df, "A", "B", "i_auroc", "A beats B")
    assert v.diff == 0 and v.verdict == "inconclusive" and "64²" in v.design
    assert (df.steps == 0).all() and v.design.endswith("training-free each")   # kNN takes no optimizer step
    rd = train_categories("rd", "ci", str(tiny_benchmark), ["brick"], {"epochs": 2}, {"batch_size": 3},
                          runs_dir=tmp_path).runs["brick"]
    assert rd.steps == 4                                                         # 6 images, batch 3, 2 epochs


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


def test_chapter_start_merges_the_profile_and_generates_the_embedded_data_at_its_size(tmp_path, monkeypatch):
    from rdlib.chapter import start
    from rdlib.methods import method_profile

    monkeypatch.setenv("RDLIB_DATA", str(tmp_path / "data"))
    ch = start("rd", "ci", ["brick"], options={"epochs": 1}, fit={"seed": 5}, n_train=2, n_test_good=1,
               n_test_per_defect=1, announce=False)
    assert ch.options == {**method_profile("rd", "ci")["options"], "epochs": 1}
    assert ch.fit == {**method_profile("rd", "ci")["fit"], "seed": 5}
    assert ch.root.parent == tmp_path / "data" and f"{ch.image_size}px" in ch.root.name
    assert ch.device in ("cpu", "cuda") and ch.data_name.endswith(f"({ch.root.name})")
    other = ch.root_at(ch.image_size * 2)                     # ablations at another size: the benchmark at that size
    assert other != ch.root and f"{ch.image_size * 2}px" in other.name and ch.root_at(None) == ch.root
    assert ch.budget_keys() == ["epochs"]
    from rdlib.data import DataError
    from trees import write_tree

    with pytest.raises(DataError, match="no category folder 'bottle'"):      # checked before anything runs
        start("urd", "ci", ["bottle"], data_root=tmp_path, announce=False)
    write_tree(tmp_path, "mvtec", ["bottle"], n_train=1, n_good=1, n_bad=1)
    given = start("urd", "ci", ["bottle"], data_root=tmp_path, announce=False)
    assert given.root == tmp_path and given.root_at(999) == tmp_path      # a reader's dataset is resized per run
    assert given.options == method_profile("urd", "ci")["options"]
    with pytest.raises(FileNotFoundError, match="DATA_ROOT"):
        start("urd", "ci", ["bottle"], data_root=tmp_path / "missing", announce=False)


def test_claim_log_summary_counts_verdicts_and_names_designs():
    from rdlib.claims import ClaimLog

    log = ClaimLog("toy")
    assert log.summary() == "no claim was judged in this profile"
    df = grid(shift=8.0, noise=1.0, cats=1, seeds=3, seed=1)
    log.add(judge(df, "A", "B", "i_auroc", "A beats B"))
    log.add(judge(df, "B", "A", "i_auroc", "B beats A"))
    log.add(judge(df, "A", "C", "i_auroc", "A beats C"))                  # C has no runs: not judged
    assert log.summary().startswith("of 3 claims, 1 supported, 1 contradicted, 1 not judged (designs: ")
    assert log.verdicts[0].design in log.summary()


def test_a_training_free_variant_is_named_so_and_a_hopeless_design_says_it():
    df = grid(shift=0.0, noise=30.0, cats=2, seeds=1, seed=5)
    df["steps"] = np.where(df.variant == "A", 40, 0)
    v = judge(df, "A", "B", "i_auroc", "A beats B")
    assert v.design.endswith("40 steps vs training-free") and not v.unequal_budgets
    assert v.verdict == "inconclusive" and "too small to detect any effect" in v.sentence


def test_chapter_findings_are_glued_under_the_chapter_name(tmp_path, monkeypatch):
    import myst_nb

    from rdlib.chapter import start

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.update({name: value}))
    monkeypatch.setenv("RDLIB_DATA", str(tmp_path / "data"))
    kw = dict(n_train=2, n_test_good=1, n_test_per_defect=1, announce=False)
    start("rd", "ci", ["brick"], **kw).finding("plateau", "text")
    start("rd", "ci", ["brick"], name="comparison", **kw).finding("ranking", "text")
    assert {k for k in glued if "_find_" in k} == {"rd_find_plateau", "comparison_find_ranking"}
    assert glued["claim_design"] == "3 categories × 3 seeds" and glued["plateau_flat"] == "30%"   # the rules, for prose


def test_a_skipped_ablation_trains_nothing_and_the_shared_design_is_glued_by_the_first_one_run(tmp_path, monkeypatch):
    import myst_nb

    import rdlib.chapter as chapter_mod
    from rdlib.chapter import start

    glued, trained = {}, []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.update({name: glued.get(name, []) + [value]}))
    monkeypatch.setattr(chapter_mod, "run_grid", lambda *a, **k: trained.append(a[3]) or pd.DataFrame(
        {"variant": ["A"], "category": ["brick"], "seed": [1], "status": ["ok"], "i_auroc": [90.0]}))
    monkeypatch.setenv("RDLIB_DATA", str(tmp_path / "data"))
    ch = start("rd", "ci", ["brick"], n_train=2, n_test_good=1, n_test_per_defect=1, announce=False)
    skipped = ch.ablation({"A": {}}, ["brick"], [1, 2], ["i_auroc"], glue_prefix="abl", skip=True)
    assert skipped.grid.empty and trained == []
    ran = ch.ablation({"A": {}}, ["gravel"], [1], ["i_auroc"], glue_prefix="abl")
    again = ch.ablation({"A": {}}, ["coffee"], [1], ["i_auroc"], glue_prefix="abl")
    assert trained == [["gravel"], ["coffee"]] and not ran.grid.empty and not again.grid.empty
    # the shared design, glued once (a second glue of a key fails the -W book build), by the first ablation given it
    assert glued["abl_cats"] == ["brick"] and glued["abl_seeds"] == ["2"] and glued["abl_size"] == [f"{ch.image_size}²"]


def test_skipped_ablations_are_checked_and_said_in_one_sentence(tmp_path, monkeypatch):
    import myst_nb

    from rdlib.chapter import start

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.update({name: value}))
    monkeypatch.setenv("RDLIB_DATA", str(tmp_path / "data"))
    ch = start("rd", "ci", ["brick"], n_train=2, n_test_good=1, n_test_per_defect=1, announce=False)
    names = {"table5": "Table 5 (bottleneck)", "loss": "the loss", "relu": "the ReLU"}
    assert ch.skipped_ablations(["table5", "loss", "relu"], names, ["brick"]) == names
    assert glued["abl_skipped"].startswith("This build leaves Table 5 (bottleneck), the loss and the ReLU to the full "
                                           "profile (SKIP_ABLATIONS): at the design a verdict needs, their runs")
    assert ch.skipped_ablations(["loss"], names, ["brick"]) == {"loss": "the loss"}
    assert glued["abl_skipped"].startswith("This build leaves the loss to the full profile (SKIP_ABLATIONS): at the "
                                           "design a verdict needs, its runs")
    assert ch.skipped_ablations([], names, ["brick"]) == {} and glued["abl_skipped"] == "Every ablation runs in this build."
    assert ch.skipped_ablations([], names, []) == {} and "runs none of them" in glued["abl_skipped"]   # paper profile
    with pytest.raises(ValueError, match=r"SKIP_ABLATIONS: unknown \['tabel5'\]; use any of \['loss', 'relu', 'table5'\]"):
        ch.skipped_ablations(["tabel5"], names, ["brick"])
    with pytest.raises(ValueError, match="SKIP_ABLATIONS must be a list of names, got 'loss'"):
        ch.skipped_ablations("loss", names, ["brick"])
