"""The book's presentation helpers (rdlib.viz, rdlib.results.chance_levels): what they promise a reader."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from rdlib.results import chance_levels, chance_sentence  # noqa: E402
from rdlib.training import EvalResult  # noqa: E402
from rdlib.viz import COLUMN_INCHES, book_style, category_chart, panel_grid, score_histogram, show  # noqa: E402


def _result(labels, masks):
    labels = np.asarray(labels)
    return EvalResult(labels, labels.astype(float), np.zeros(masks.shape, np.float16), masks, ["x"] * len(labels))


def test_chance_levels_by_hand():
    masks = np.zeros((4, 10, 10), bool)
    masks[1, :2, :5] = True            # 10 pixels
    masks[2, 0, :10] = True            # 10 pixels → 20 of 400 = 5 %
    lv = chance_levels(_result([0, 1, 1, 0], masks))
    assert lv == {"i_auroc": 50.0, "p_auroc": 50.0, "i_ap": 50.0, "p_ap": 5.0}
    text = chance_sentence({"a": _result([0, 1, 1, 0], masks)})
    assert "I-AP 50.0" in text and "P-AP 5.0" in text


def test_chance_level_of_ap_is_what_random_scores_reach():
    """The AP of random scores converges to the positive share that chance_levels reports."""
    from rdlib.metrics import average_precision

    rng = np.random.default_rng(0)
    labels = rng.random(20000) < 0.3
    assert average_precision(rng.random(labels.size), labels) == pytest.approx(100 * labels.mean() / 100, abs=0.01)


def test_book_style_turns_truncation_off():
    book_style(precision=2)
    long = "camera, moon, astronaut, rocket, hubble_deep_field, immunohistochemistry, chelsea"
    html = pd.DataFrame({"photos": [long]}).to_html()
    assert long in html and "..." not in html
    assert matplotlib.rcParams["figure.figsize"][0] == COLUMN_INCHES
    assert matplotlib.rcParams["xtick.labelsize"] >= 9


def test_panel_grid_wraps_and_hides_the_rest():
    fig, axes = panel_grid(5, ncols=2)
    assert len(axes) == 5
    assert len(fig.axes) == 6 and sum(ax.get_visible() for ax in fig.axes) == 5
    assert fig.get_size_inches()[0] == pytest.approx(COLUMN_INCHES)
    plt.close(fig)


def test_score_histogram_titles_the_auroc_it_shows():
    fig, ax = plt.subplots()
    score_histogram(ax, [0.1, 0.2, 0.3, 0.9], [0, 0, 1, 1], title="brick")     # every anomalous above every normal
    assert ax.get_title() == "brick: I-AUROC 100.0"
    ax.clear()
    score_histogram(ax, [0.1, 0.5, 0.3, 0.9], [0, 0, 1, 1], title="grass")     # pairs: (0.3>0.1) (0.3<0.5) (0.9>both)
    assert ax.get_title() == "grass: I-AUROC 75.0"
    assert ax.get_ylabel() == "images"
    plt.close(fig)


def test_every_map_gets_a_colour_bar_unless_asked_not_to():
    fig, axes = plt.subplots(1, 2)
    img = np.zeros((8, 8, 3))
    show(axes[0], img, np.random.rand(8, 8))
    show(axes[1], img, np.random.rand(8, 8), colorbar=False)
    assert len(fig.axes) == 3                      # two images + one colour bar
    plt.close(fig)


def test_category_chart_draws_one_series_per_column_and_chance():
    table = pd.DataFrame({"RD": [80.0, 60.0, 70.0], "kNN": [95.0, 90.0, 92.5]}, index=["brick", "grass", "mean"])
    fig, ax = plt.subplots()
    category_chart(ax, table, ["RD", "kNN"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["brick", "grass"]    # the mean row is not a category
    ys = [np.asarray(line.get_ydata(), float).tolist() for line in ax.get_lines()]
    assert [80.0, 60.0] in ys and [95.0, 90.0] in ys and [50.0, 50.0] in ys
    plt.close(fig)
