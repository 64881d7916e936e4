"""Reading a method's plateau from its learning curves (rdlib.plateau) and the rule that a claim is judged on
converged runs only (rdlib.claims.judge with the ``converged`` column)."""
import numpy as np
import pandas as pd
import pytest

from rdlib.claims import judge
from rdlib.plateau import MEAN_ROW, PLATEAU_ROW, mark, plateau, settle_step, smoothed, stretch_start, trend
from test_stats import grid

STEPS = [50, 100, 150, 200, 250, 300]


def curves(values_by_category: dict[str, list[float]], steps=STEPS) -> pd.DataFrame:
    return pd.DataFrame([{"category": cat, "step": s, "i_auroc": v}
                         for cat, values in values_by_category.items() for s, v in zip(steps, values)])


def test_settle_step_by_hand():
    assert settle_step(STEPS, [60, 70, 79, 80, 81, 80], tol=2.0, smooth=1) == 150   # final level 80.33: 79 is inside
    # read on the running mean of three (65, 69.67, 76.33, 80, 80.33, 80.5): 76.33 is 4 below 80.33, 80 inside
    assert settle_step(STEPS, [60, 70, 79, 80, 81, 80], tol=2.0) == 200
    assert smoothed([60, 70, 79, 80]) == pytest.approx([65, 69.6667, 76.3333, 79.5], abs=1e-3)
    assert settle_step(STEPS, [80, 80, 80, 80, 80, 80]) == 50                  # flat from the first evaluation
    assert settle_step(STEPS, [50, 60, 70, 80, 90, 100]) == 300                # still rising: only the last step
    assert settle_step(STEPS[::-1], [80, 81, 80, 79, 70, 60]) == 200          # the same curve, evaluations in any order
    assert settle_step([50, 100], [1, 2]) is None                              # too few evaluations


def test_a_curve_flat_for_most_of_its_schedule_is_converged():
    # three categories at different levels (the mean: 70, 80, 85, 85, 85, 85 + noise ≤ 0.35): 80 is 5 points below the
    # final level, so the mean curve settles at step 150, flat for half of the schedule over 4 evaluations
    p = plateau(curves({"a": [60, 75, 80, 80.5, 79.5, 80], "b": [70, 80, 85, 85, 85, 85.5],
                        "c": [80, 85, 90, 89.5, 90.5, 89.5]}), "M")
    mean = np.array([70, 80, 85, 85, 85, 85])
    assert p.curve.values == pytest.approx(mean, abs=0.35)
    assert p.settled_at == 150 and p.steps == 300 and p.level == pytest.approx(85.0, abs=0.2)
    assert p.converged and p.status == "converged" and p.why == ""
    assert "converged" in p.sentence and "step 150 of its 300" in p.sentence
    table = p.table()
    assert list(table.index) == ["a", "b", "c", MEAN_ROW, PLATEAU_ROW]
    assert table.loc[MEAN_ROW, "settled at step"] == 150 and table.loc[PLATEAU_ROW, "settled at step"] == 150
    # steps logged as floats (a long table with NaNs) still show as steps: "150", not "150.0" beside the sentence's 150
    floats = plateau(curves({"a": [60, 75, 80, 80.5, 79.5, 80], "b": [70, 80, 85, 85, 85, 85.5],
                             "c": [80, 85, 90, 89.5, 90.5, 89.5]}, [float(s) for s in STEPS]), "M")
    assert floats.converged and f"step {floats.settled_at} of" in floats.sentence and "150.0" not in floats.sentence
    assert {str(floats.table().loc[row, "settled at step"]) for row in ("a", "b", MEAN_ROW, PLATEAU_ROW)} \
        <= {str(s) for s in STEPS}


@pytest.mark.parametrize("values, why", [
    ([50, 60, 70, 80, 90, 100], "still rising"),
    ([95, 90, 85, 80, 75, 70], "still falling"),
    ([60, 70, 80, 90, 90.5, 90], "still rising"),      # only the last 3 evaluations agree: not shown to be flat
])
def test_a_curve_still_moving_at_the_end_is_not_converged(values, why):
    p = plateau(curves({c: [v + k for v in values] for k, c in enumerate("abc")}), "M")
    assert not p.converged and why in p.why and "not converged" in p.sentence
    assert p.table().loc[MEAN_ROW, "settled at step"] == "—"                    # never settled: no step shown
    assert p.table().loc[PLATEAU_ROW, "settled at step"] == "—"


def test_a_late_settle_is_not_converged_and_fewer_than_three_categories_say_nothing_about_the_method():
    steps = list(range(50, 1050, 50))                                         # 20 evaluations
    late = list(range(50, 80, 2)) + [90] * 5              # 50 … 78 until step 750, then 90 from step 800
    # the running mean at 800 is (78 + 90 + 90) / 3 = 86, 4 below the final 90: settled at 850 of 1000, 15 %
    p = plateau(curves({c: late for c in "abc"}, steps), "M")
    assert p.settled_at == 850 and not p.converged and "settles only at step 850 of 1000, less than 30%" in p.why
    early = [50, 60] + [90] * 18                                              # settled at 150 of 1000: converged
    assert plateau(curves({c: early for c in "abc"}, steps), "M").converged
    p = plateau(curves({c: [80] * 6 for c in "ab"}), "M")
    assert not p.converged and "learning curves on 2 categories; a statement about the method needs 3" in p.why
    assert not plateau(pd.DataFrame(), "M").converged                          # no curves: nothing shown


def test_trend_is_the_least_squares_change_across_the_steps():
    assert trend([0, 10, 20], [80, 82, 84]) == pytest.approx(4.0)                # a straight line: its change
    assert trend([0, 10, 20, 30], [80, 90, 80, 90]) == pytest.approx(6.0)        # slope 60/500 over 30 steps, by hand
    assert trend([0, 10, 20, 30], [85, 85, 85, 85]) == 0.0
    assert np.isnan(trend([50], [80]))


def test_a_flat_mean_that_hides_one_category_rising_and_another_falling_starts_later():
    steps = list(range(50, 550, 50))                                          # 10 evaluations, 50 … 500
    rise = [80, 82, 84, 86, 88, 90, 90, 90, 90, 90]                           # +10 until step 300, then flat
    fall = [100, 98, 96, 94, 92, 90, 90, 90, 90, 90]                          # the mirror: the mean of a and b is 90
    flat = [90] * 10
    p = plateau(curves({"a": rise, "b": fall, "c": flat}, steps), "M")
    assert p.mean_settled_at == 50 and p.curve.values == pytest.approx([90] * 10)
    # by hand, a's fitted change from step 100: Σdx·y = 3000, Σdx² = 150000, × 400 steps = +8.0 (> 6); from step 150:
    # Σdx·dy = 1700, Σdx² = 105000, × 350 steps = +5.67 (≤ 6): the stretch starts at 150
    assert trend(steps[1:], rise[1:]) == pytest.approx(8.0) and trend(steps[2:], rise[2:]) == pytest.approx(1700 / 105000 * 350)
    assert p.settled_at == 150 and p.converged                                # 350 of 500 steps flat after it
    assert p.trends.round(2).to_dict() == {"a": 5.67, "b": -5.67, "c": 0.0}
    assert p.table().loc["a", "trend over the flat stretch"] == pytest.approx(5.67, abs=0.005)
    # the same categories moving until the end: the mean is still flat from 50, but the method is not converged
    late_rise, late_fall = [70 + 2.5 * i for i in range(10)], [110 - 2.5 * i for i in range(10)]
    p = plateau(curves({"a": late_rise, "b": late_fall, "c": flat}, steps), "M")
    assert p.mean_settled_at == 50 and not p.converged and p.settled_at == 400    # the last 3 change by 5.0
    assert "flat from step 50, but the categories' own curves still move" in p.why and "a +22.5, b -22.5" in p.why
    # … or until step 400 of 500: flat only over the last 200 steps, settled at 350 (by hand: the last 4 change
    # by 5.25, the last 5 by 8.0), 150 steps = 30 % of the schedule: just converged; one evaluation later it is not
    stop = [70 + 2.5 * i for i in range(9)] + [90]
    p = plateau(curves({"a": stop, "b": [180 - v for v in stop], "c": flat}, steps), "M")
    assert p.settled_at == 350 and p.converged
    p = plateau(curves({"a": stop, "b": [180 - v for v in stop], "c": flat}, steps), "M", flat=0.31)
    assert not p.converged and "settles only at step 350 of 500 (the mean alone from step 50" in p.why
    # noise of ±2 around a flat category never moves the stretch (fitted change well inside 6)
    noisy = [90, 92, 88, 91, 89, 92, 88, 90, 91, 89]
    assert stretch_start(pd.Series(flat, index=steps, dtype=float),
                         pd.DataFrame({"a": noisy, "b": flat, "c": flat}, index=steps)) == 50


def test_the_mean_curve_uses_only_steps_every_category_evaluated():
    df = curves({c: [80] * 6 for c in "abc"})
    df = pd.concat([df, pd.DataFrame([{"category": "a", "step": 350, "i_auroc": 10.0}])])
    p = plateau(df, "M")
    assert p.steps == 300 and p.converged                                      # the lone step 350 is left out


def test_mark_applies_a_plateau_within_the_steps_it_was_read_at():
    table = pd.DataFrame([{"variant": "A", "steps": 300}, {"variant": "A", "steps": 150}, {"variant": "A", "steps": 100},
                          {"variant": "A", "steps": 400}, {"variant": "B", "steps": 300}, {"variant": "kNN", "steps": 0}])
    ok = plateau(curves({c: [70, 80, 85, 85, 85, 85] for c in "abc"}), "A")          # settles at 150 of 300
    assert list(mark(table, {"A": ok}).converged) == [True, True, False, True, None, True]   # 400: past a flat end
    rising = plateau(curves({c: [50, 60, 70, 80, 90, 100] for c in "abc"}), "A")
    assert list(mark(table, {"A": rising}).converged) == [False, False, False, False, None, True]
    assert list(mark(table.drop(columns="steps"), {"A": ok}).converged) == [True] * 4 + [None, None]


def test_categories_of_different_schedules_are_aligned_by_the_fraction_of_their_schedule():
    # a reader's categories with different training-set sizes: budgets in epochs give each its own step grid
    short = curves({"a": [70, 80, 85, 85, 85, 85]}, [10, 20, 30, 40, 50, 60])
    long_ = curves({c: [70, 80, 85, 85, 85, 85] for c in "bc"}, [20, 40, 60, 80, 100, 120])
    p = plateau(pd.concat([short, long_]), "M")
    assert len(p.curve) == 6 and p.steps == 120 and p.settled_at == 60 and p.converged       # median category's steps
    assert p.last_steps == {"a": 60, "b": 120, "c": 120}
    table = pd.DataFrame([{"variant": "M", "category": "a", "steps": 30}, {"variant": "M", "category": "a", "steps": 20},
                          {"variant": "M", "category": "b", "steps": 60}])
    assert list(mark(table, {"M": p}).converged) == [True, False, True]     # a settles at 30 of its 60 steps


def test_a_metric_never_logged_gives_an_empty_plateau():
    df = curves({c: [80] * 6 for c in "abc"}).assign(i_auroc=np.nan)
    p = plateau(df, "M")
    assert not p.converged and p.why == "no finished run logged a learning curve"


def test_judge_does_not_judge_a_claim_on_runs_that_are_not_converged():
    df = grid(shift=5.0)                                                       # A beats B by 5 points, clearly
    assert judge(df, "A", "B", "i_auroc", "A beats B").verdict == "supported"
    df["converged"] = df.variant.eq("B") | df.variant.eq("A")
    assert judge(df, "A", "B", "i_auroc", "A beats B").verdict == "supported"  # both converged: judged as before
    df["converged"] = df.variant.eq("B")                                       # A below its plateau
    v = judge(df, "A", "B", "i_auroc", "A beats B")
    assert v.verdict == "not judged" and "'A' not trained to its plateau" in v.reason
    assert v.label == "not judged (not converged)" and v.design == "5 categories × 3 seeds"
    df["converged"] = np.where(df.variant.eq("A"), True, None)                 # B's convergence unknown
    assert judge(df, "A", "B", "i_auroc", "A beats B").verdict == "not judged"


def test_a_staged_method_is_read_on_its_last_stage_at_the_step_count_over_all_stages(tiny_benchmark, tmp_path):
    # AAND-like: a first stage of 50 steps evaluated once (at chance), then 300 steps flat at 90 from the start
    first = curves({c: [50.0] for c in "abc"}, [50]).assign(stage="raa")
    second = curves({c: [90.0] * 6 for c in "abc"}).assign(stage="distill")
    df = pd.concat([first, second]).assign(total_step=lambda d: d.step + np.where(d.stage == "distill", 50, 0))
    p = plateau(df, "AAND")
    assert p.steps == 350 and p.settled_at == 100 and p.level == 90 and p.converged
    # learning_curves counts the steps of earlier stages into total_step, as Run.steps does
    from rdlib.experiments import learning_curves, train_categories

    cr = train_categories("aand", "ci", str(tiny_benchmark), ["brick"], {"raa_epochs": 2, "distill_epochs": 2},
                          {"batch_size": 3, "eval_every": 1}, runs_dir=tmp_path)
    lc, run = learning_curves(cr), cr.runs["brick"]
    assert list(lc.stage) == ["raa", "raa", "distill", "distill"]
    assert list(lc.total_step) == [2, 4, 6, 8] and lc.total_step.max() == run.steps


def test_judge_asks_for_the_books_smallest_design_when_told():
    df = grid(shift=5.0, cats=5, seeds=3)
    assert judge(df, "A", "B", "i_auroc", "A beats B", min_design=(3, 3)).verdict == "supported"
    two_seeds = df[df.seed < 2]                                               # 5 categories × 2 seeds
    v = judge(two_seeds, "A", "B", "i_auroc", "A beats B", min_design=(3, 3))
    assert v.verdict == "not judged" and "3 categories × 3 seeds" in v.reason
    assert judge(two_seeds, "A", "B", "i_auroc", "A beats B").verdict == "supported"     # no minimum asked
    mixed = df[(df.seed < 1) | df.category.isin(["c0", "c1", "c2"])]          # 3 categories × 3 seeds + 2 × 1
    assert judge(mixed, "A", "B", "i_auroc", "A beats B", min_design=(3, 3)).verdict == "supported"


def _noisy_curves(rng, n_eval: int, sigma: float, late_rise: float = 0.0, categories: int = 3) -> pd.DataFrame:
    """Learning curves of ``categories`` categories evaluated ``n_eval`` times: a rise from 62 to 92 that is flat
    (within 0.5) from 30 % of the schedule, plus ``late_rise`` points gained linearly over its last 40 %, plus
    Gaussian scatter of ``sigma`` per evaluation."""
    steps = np.arange(1, n_eval + 1) * 25
    frac = steps / steps[-1]
    base = 92 - 30 * np.exp(-frac / 0.075) + late_rise * np.clip((frac - 0.6) / 0.4, 0, 1)
    return pd.DataFrame([{"category": f"c{c}", "step": int(s), "i_auroc": v} for c in range(categories)
                         for s, v in zip(steps, base + rng.normal(0, sigma, n_eval))])


@pytest.mark.parametrize("n_eval", [5, 10, 18])
def test_the_rule_calls_a_flat_curve_converged_and_a_rising_one_not_at_its_noise(n_eval):
    """By simulation at the scatter the rule is built for (σ = 2 points per category and evaluation, 3 categories;
    RD-RE's stage-2 curves scatter by about that much): a curve flat from 30 % of its schedule is called converged
    in ≥ 85 % of 200 draws (92–99 % in 1,000), one still gaining 6 points over its last 40 % in ≤ 15 % (0.6–8 %).
    Read on the raw evaluations (``smooth=1, stray=1``), the flat curve at 18 evaluations fails far more often."""
    rng = np.random.default_rng(7)
    reps = 200
    flat = np.mean([plateau(_noisy_curves(rng, n_eval, 2.0), "M").converged for _ in range(reps)])
    rising = np.mean([plateau(_noisy_curves(rng, n_eval, 2.0, late_rise=6.0), "M").converged for _ in range(reps)])
    assert flat >= 0.85 and rising <= 0.15, (flat, rising)
    if n_eval == 18:
        raw = np.mean([plateau(_noisy_curves(rng, n_eval, 2.0), "M", smooth=1, stray=1).converged for _ in range(reps)])
        assert raw <= 0.70, raw                                                 # 57 % in 1,000 draws


def test_one_evaluation_far_from_the_level_is_not_averaged_away():
    steps = list(range(50, 550, 50))                                          # 10 evaluations, 50 … 500
    outlier = [70, 80, 90, 90, 90, 90, 84, 90, 90, 90]                        # one evaluation 6 below the level 90
    # the running mean there is (90 + 84 + 90) / 3 = 88, inside ±2; the evaluation itself is 6 > 2 × 2 away: the
    # stretch starts after it, at 400 of 500 (20 %, not converged); without that guard it would start at 200
    p = plateau(curves({c: outlier for c in "abc"}, steps), "M")
    assert p.settled_at == 400 and not p.converged
    assert plateau(curves({c: outlier for c in "abc"}, steps), "M", stray=100).settled_at == 200
    dropped = [70, 80] + [90] * 7 + [82]                                      # a last evaluation 8 below
    p = plateau(curves({c: dropped for c in "abc"}, steps), "M")              # level 87.33: 82 is 5.33 below
    assert p.settled_at == 500 and not p.converged and "still falling" in p.why


def test_the_table_states_the_plateau_the_sentence_states_when_a_category_drifts_after_the_mean_settles():
    steps = list(range(50, 550, 50))                                             # 10 evaluations
    rise = [80, 82, 84, 86, 88, 90, 90, 90, 90, 90]                             # +10 by step 300, then flat
    p = plateau(curves({"a": rise, "b": [85] * 10, "c": [170 - v for v in rise]}, steps), "M")
    table = p.table()
    assert table.loc[MEAN_ROW, "settled at step"] == 50                         # the mean alone is flat throughout
    assert p.settled_at > 50 and table.loc[PLATEAU_ROW, "settled at step"] == p.settled_at
    assert f"step {p.settled_at} of its 500" in p.sentence
