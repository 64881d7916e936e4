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


def test_layout_problems_finds_nothing_in_a_clean_figure():
    from rdlib.viz import layout_problems

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1, 2], [10, 20, 30], "o-", label="a")
    ax.axhline(95, ls="--", label="ceiling")                # a reference line under the legend, not data
    ax.set_xticks([0, 1, 2], ["brick", "grass", "gravel"])
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left")                              # over the empty upper left and the chance line only
    ax.set_xlabel("category")
    fig.tight_layout()
    assert layout_problems(fig) == []
    plt.close(fig)


def test_layout_problems_finds_text_too_small_for_a_phone():
    """9 pt is the smallest a phone shows above 9 px (at 75 % of the figure); a figure wider than the column is
    shown shrunk, so its 9 pt labels count as smaller."""
    from rdlib.viz import MIN_FONT_PT, layout_problems

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1], [0, 1], label="a")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("small title", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    found = [p for p in layout_problems(fig) if p.startswith(f"text below {MIN_FONT_PT} pt")]
    assert len(found) == 1 and "'small title' (8.0 pt)" in found[0] and "'a' (7.0 pt)" in found[0]
    ax.set_title("small title", fontsize=9)
    ax.legend(fontsize=9, loc="lower right")
    assert not [p for p in layout_problems(fig) if "text below" in p]
    fig.set_figwidth(13.6)                                   # shown at half its size in the column
    assert [p for p in layout_problems(fig) if "'small title' (4.5 pt)" in p]
    plt.close(fig)


def test_layout_problems_finds_tick_labels_running_together():
    from rdlib.viz import layout_problems

    fig, ax = plt.subplots(figsize=(1.6, 2))
    names = ["grass", "gravel", "coins", "coffee", "brick"]
    ax.plot(range(5), range(5), "o")
    ax.set_xticks(range(5), names)
    found = layout_problems(fig)
    assert "texts overlap: 'grass' and 'gravel'" in found, found
    ax.set_xticks(range(5), names, rotation=90)              # the usual repair: no overlap left between the names
    assert not [p for p in layout_problems(fig) if "'grass' and 'gravel'" in p]
    plt.close(fig)


@pytest.mark.parametrize("kind", ["line", "segment", "errorbar", "bar"])
def test_layout_problems_finds_a_legend_over_data(kind):
    from rdlib.viz import layout_problems

    fig, ax = plt.subplots(figsize=(5, 3))
    if kind == "line":        # markers where the legend sits (upper right)
        ax.plot([0, 9, 10], [0, 95, 98], "o", label="run")
    elif kind == "segment":   # no point under the legend, only the segment between two points crosses it
        ax.plot([0, 20], [100, 90], "-", label="run")
        ax.plot([0, 20], [0, 1], "-", label="other")
        ax.set_xlim(0, 10)
    elif kind == "errorbar":  # the interval's bar reaches into the legend, its point does not
        ax.errorbar([10], [40], yerr=[[1], [58]], fmt="o", label="seeds")
        ax.plot([0], [0], "o", label="other")
    else:
        ax.bar([0, 1, 2, 3], [20, 30, 40, 99], label="bars")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper right")
    found = layout_problems(fig)
    assert any(p.startswith("legend over") for p in found), found
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.02))   # placed above the axes, beside no data
    assert not [p for p in layout_problems(fig) if p.startswith("legend over")]
    plt.close(fig)


def test_show_figure_prints_each_problem_under_the_figure(capsys):
    from rdlib.viz import LAYOUT_PROBLEM, show_figure

    fig, ax = plt.subplots(figsize=(1.6, 2))
    ax.plot(range(5), range(5), "o")
    ax.set_xticks(range(5), ["grass", "gravel", "coins", "coffee", "brick"])
    show_figure(fig)
    assert f"{LAYOUT_PROBLEM}texts overlap: 'grass' and 'gravel'" in capsys.readouterr().out.splitlines()
    plt.close(fig)


def test_layout_problems_leaves_alone_what_a_reader_does_not_see_as_broken():
    from rdlib.viz import layout_problems

    names = ["grass", "gravel", "coins", "coffee", "brick"]
    fig, axes = plt.subplots(1, 3, figsize=(6, 2.5))
    axes[0].bar([0, 1], [10, 20], label="bars")
    axes[0].axhspan(80, 100, color="grey", alpha=0.2)          # a reference band under the legend, not data
    axes[0].set_ylim(0, 100)
    axes[0].legend(loc="upper left")
    axes[1].set_xticks(range(5), names)                         # crowded, but the axes are off: nothing drawn
    axes[1].axis("off")
    axes[2].hist([1.0, 1.1, 1.2, 2.0])                          # ticks past the limits are kept but not drawn
    fig.tight_layout()
    assert layout_problems(fig) == []
    plt.close(fig)
