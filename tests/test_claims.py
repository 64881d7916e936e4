"""Claims judged on runs (rdlib.claims), ranks, the per-category interval plot, the comparison chapter's tables."""
import math
import types
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from rdlib.claims import AblationReport, ClaimLog, claims_file, judge, paper_claims, read_claims  # noqa: E402
from rdlib.stats import mean_ranks, t_interval  # noqa: E402
from rdlib.viz import method_dots  # noqa: E402
from test_stats import grid  # noqa: E402


def test_claim_log_keeps_the_verdicts_it_is_given_and_round_trips(tmp_path):
    df = grid(shift=2.0)
    log = ClaimLog("toy")
    v = judge(df, "A", "B", "i_auroc", "A beats B")
    assert log.add(v) == v.sentence
    log.add(judge(df, "A", "Z", "i_auroc", "A beats Z"))
    assert log.markdown() == f"- {v.sentence}\n- A beats Z: not judged (no runs of 'Z' in the table)."
    assert read_claims("book", tmp_path).empty                                   # nothing saved yet: an empty table
    path = log.save("book", tmp_path)
    assert path == claims_file("toy", "book", tmp_path) and path.is_file()
    back = read_claims("book", tmp_path)
    assert list(back.verdict) == [v.verdict, "not judged"] and set(back.source) == {"toy"}
    assert back["diff"].iloc[0] == pytest.approx(v.diff) and back.design.iloc[0] == "5 categories × 3 seeds"
    assert back.sentence.iloc[0] == v.sentence
    log.verdicts.pop()
    log.save("book", tmp_path)                                                   # a rerun replaces, never appends
    assert len(read_claims("book", tmp_path)) == 1 and not list(path.parent.glob("*.tmp"))


def test_ablation_report_shows_our_rows_beside_the_papers_and_records_what_it_judges(tmp_path, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    df = grid(shift=4.0)
    paper = _papers([{"table_id": "t1", "method": "paper_a", "i_auroc": 91.0},
                     {"table_id": "t1", "method": "paper_b", "i_auroc": 88.0}])
    report = AblationReport("toy", df, ["i_auroc"], paper)
    report.table(["B", "A"], "t1", ["paper_b", None], ("i_auroc",))
    t, line = shown
    assert "no claim on them is judged" in line.data                             # no plateaus: said under the table
    assert line.data.startswith("_— in a paper column: the paper reports no number for that row._")
    assert list(t.index) == ["B", "A"]                                            # the order asked for
    assert float(t.iloc[1, 0].split(" ± ")[0]) == pytest.approx(df[df.variant == "A"].i_auroc.mean(), abs=0.05)
    assert t.iloc[0, -1] == 88.0 and t.iloc[1, -1] == "—"                        # paper column: row B only
    report.judge("A", "B", "A beats B", "i_auroc")
    s = report.log.verdicts[-1].sentence
    assert shown[-1].data == s                                                    # shown below the table
    assert s == judge(df, "A", "B", "i_auroc", "A beats B", paper_claim=True).sentence   # A has no paper row here
    assert "**supported**, at this budget" in s
    assert report.markdown() == f"- {s}"
    assert report.log.save("book", tmp_path) == claims_file("toy", "book", tmp_path)
    empty = AblationReport("toy", pd.DataFrame(), ["i_auroc"], paper)             # ablations skipped by the profile
    empty.table(["A", "B"], "t1", ["paper_a", "paper_b"], ("i_auroc",))           # the paper's rows alone, said so
    paper_only, said = shown[3:5]
    assert paper_only.to_dict() == {"paper I-AUROC": {"A": 91.0, "B": 88.0}}
    assert "The paper's rows alone: ours are not run in this profile" in said.data
    empty.judge("A", "B", "A beats B", "i_auroc")
    assert len(shown) == 5
    assert empty.markdown() == AblationReport.SKIPPED and empty.log.verdicts == []
    drawn = []
    empty.figure("Fig. 9", lambda: drawn.append(1))                              # a figure of runs that did not run
    assert not drawn and shown[-1].data == f"_Fig. 9: not drawn; the runs behind it are {AblationReport.NOT_RUN}._"
    report.figure("Fig. 9", lambda: drawn.append(1))
    assert drawn == [1] and len(shown) == 6
    both = AblationReport("toy", df, ["i_auroc"], paper)                          # both rows have the paper's numbers
    both.plateaus = {"A": types.SimpleNamespace(label="A", converged=True, settled_at=100, steps=250),
                     "B": types.SimpleNamespace(label="B", converged=False, why="still rising"),
                     "C": types.SimpleNamespace(label="A", converged=True)}          # C re-scores A's runs
    both.table(["B", "A"], "t1", ["paper_b", "paper_a"], ("i_auroc",))
    assert shown[-1].data.endswith("B: **not converged** (still rising); A: converged (settles by step 100 of 250).")
    assert both.convergence(["C"]).endswith("C: A's runs re-scored, converged.")
    both.grid = pd.concat([df.assign(status="ok"), pd.DataFrame({"variant": ["F"] * 2, "status": ["failed"] * 2})])
    both.plateaus["F"] = types.SimpleNamespace(label="F", converged=False, why="no finished run logged a curve")
    assert both.convergence(["F"]).endswith("F: failed (no run finished, see the note above).")   # not "not converged"
    both.grid = df
    assert both.paper_effect("A", "B", "i_auroc") == pytest.approx(3.0)             # 91 − 88, the paper's effect
    assert both.paper_effect("A", "B", "p_auroc") is None and both.paper_effect("A", "C", "i_auroc") is None
    both.judge("A", "B", "A beats B", "i_auroc")
    assert both.log.verdicts[-1].paper_diff == pytest.approx(3.0)
    both.judge("A", "B", "A beats B, our own claim", "i_auroc", paper_claim=False)   # e.g. about the book's teacher
    assert not both.log.verdicts[-1].paper_claim and "at this budget" not in both.log.verdicts[-1].sentence
    shared = ClaimLog("toy")                                                      # several grids, one chapter log
    AblationReport("toy", df, ["i_auroc"], paper, log=shared).judge("A", "B", "first", "i_auroc")
    AblationReport("toy", df, ["i_auroc"], paper, log=shared).judge("B", "A", "second", "i_auroc")
    assert [v.claim for v in shared.verdicts] == ["first", "second"]


def _papers(rows):
    base = dict(paper="urd", table="Table 9", table_id="urd_table9", dataset="mvtec_ad", category="mean",
                pro_variant="rd_per_image")
    return pd.DataFrame([{**base, **r} for r in rows])


def test_paper_claims_takes_the_papers_own_method_against_rd_and_rdpp_only_where_it_is_higher():
    df = _papers([{"method": "rd", "i_auroc": 98.0, "pro": 90.0}, {"method": "rdpp", "i_auroc": 99.0, "pro": 93.0},
                  {"method": "urd", "i_auroc": 99.0, "pro": 95.0}, {"method": "mkd", "i_auroc": 90.0, "pro": 80.0}])
    c = paper_claims(df)
    got = {(r.a, r.b, r.metric): r.paper_diff for r in c.itertuples()}
    assert got == {("urd", "rd", "i_auroc"): pytest.approx(1.0), ("urd", "rd", "pro_rd"): pytest.approx(5.0),
                   ("urd", "rdpp", "pro_rd"): pytest.approx(2.0)}               # the tie with RD++ is not a claim
    unknown = paper_claims(df.assign(pro_variant="unknown"))
    assert set(unknown.metric) == {"i_auroc", "pro_rd", "aupro"}                # PRO not stated: both, one claim each
    assert set(paper_claims(df.assign(pro_variant="pooled")).metric) == {"i_auroc", "aupro"}
    assert paper_claims(df.assign(dataset="visa")).empty                        # only the datasets asked for


def test_paper_claims_on_the_shipped_numbers():
    c = paper_claims()
    assert len(c) > 10 and (c.paper_diff > 0).all()
    assert set(c.a) == {"urd", "aand", "rdre"} and set(c.b) == {"rd", "rdpp"}
    row = c[(c.table_id == "urd_table2") & (c.a == "urd") & (c.b == "rd") & (c.metric == "p_ap")].iloc[0]
    assert (row.paper_a, row.paper_b) == (72.4, 61.0)                            # URD Table 2, MVTec AD mean
    runs = grid().rename(columns={"i_auroc": "x"}).assign(variant=lambda d: d.variant.map({"A": "urd", "B": "rd"}))
    runs = runs.assign(**{m: 0.0 for m in c.metric.unique()})
    verdicts = {judge(runs, r.a, r.b, r.metric, r.claim, paper_diff=r.paper_diff, paper_claim=True).verdict
                for r in c.itertuples()}
    assert verdicts <= {"inconclusive", "not judged"}                            # equal metrics, absent methods


def test_paper_protocol_names_each_quoted_tables_setup_from_its_protocol():
    """The comparison's "whose numbers come from …" is read from the quoted tables, per paper (RD-RE's tables use a
    ResNet18 teacher, URD's and AAND's a WideResNet50-2; RD's Table 6 rows with other teachers are no claim)."""
    from rdlib.comparison import paper_protocol

    assert paper_protocol() == ("MVTec AD at 256² with a WideResNet50-2 teacher (URD, AAND), "
                                "MVTec AD at 256² with a ResNet18 teacher (RD-RE)")
    rdre = paper_claims()[lambda c: c.table_id == "rd_re_table1"]
    assert paper_protocol(rdre) == "MVTec AD at 256² with a ResNet18 teacher (RD-RE)"


def test_mean_ranks_by_hand():
    rows = [("A", "c1", 0, 90), ("B", "c1", 0, 80), ("C", "c1", 0, 80),
            ("A", "c2", 0, 70), ("B", "c2", 0, 75), ("C", "c2", 0, 60),
            ("A", "c3", 0, 50)]                                                    # c3: B and C missing, left out
    df = pd.DataFrame(rows, columns=["variant", "category", "seed", "m"])
    r = mean_ranks(df, "m")
    assert r.loc["A", "mean rank"] == pytest.approx(1.5) and r.loc["B", "mean rank"] == pytest.approx(1.75)
    assert r.loc["C", "mean rank"] == pytest.approx(2.75) and r.loc["A", "cells won"] == 1 and r.loc["B", "cells"] == 2
    with pytest.raises(ValueError, match="no .category, seed. cell"):
        mean_ranks(pd.concat([df[df.category == "c3"], df.iloc[[1]].assign(category="c4")]), "m")   # no shared cell


def test_t_interval_by_hand():
    iv = t_interval([1.0, 2.0, 3.0, np.nan], "seed")
    half = 4.302652729911275 * 1.0 / math.sqrt(3)                                  # t(0.975, 2) · sd / √n
    assert iv.mean == 2.0 and iv.low == pytest.approx(2 - half) and iv.high == pytest.approx(2 + half) and iv.n == 3
    one = t_interval([5.0])
    assert one.mean == 5.0 and np.isnan(one.low) and np.isnan(t_interval([]).mean)


def test_method_dots_draws_one_series_per_method_with_its_interval():
    df = grid(shift=3.0, cats=4, seeds=3)
    fig, ax = plt.subplots()
    method_dots(ax, df, "i_auroc", ["B", "A"], {"A": "method A"})
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["B", "method A"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c0", "c1", "c2", "c3"]
    line = ax.containers[1].lines[0]                                              # A's dots
    want = [df[(df.variant == "A") & (df.category == c)].i_auroc.mean() for c in ["c0", "c1", "c2", "c3"]]
    assert np.allclose(line.get_ydata(), want)
    plt.close(fig)


def test_method_dots_cuts_an_interval_at_the_metric_range():
    """Three seeds near 100: the t-interval reaches past 100 and is drawn up to 100 only (unless bounds=None)."""
    df = pd.DataFrame({"variant": "A", "category": "c0", "seed": [0, 1, 2], "i_auroc": [99.0, 100.0, 95.0]})
    hi = t_interval(df.i_auroc).high
    assert hi > 100
    tops = {}
    for bounds in ((0.0, 100.0), None):
        fig, ax = plt.subplots()
        method_dots(ax, df, "i_auroc", bounds=bounds)
        segments = ax.containers[0].lines[2][0].get_segments()                    # the vertical error bar
        tops[bounds] = max(seg[:, 1].max() for seg in segments)
        plt.close(fig)
    assert tops[(0.0, 100.0)] == pytest.approx(100.0) and tops[None] == pytest.approx(hi)


def test_paper_vs_ours_follows_the_one_pro_rule():
    from rdlib.results import compare, our_pro_metrics

    ours = {"i_auroc": 90.0, "pro_rd": 80.0, "aupro": 70.0}
    t = compare({"i_auroc": 95.0, "pro": 85.0}, ours, pro_variant="rd_per_image")
    assert t.loc["PRO vs ours PRO (RD per-image)", "Δ"] == pytest.approx(-5.0) and len(t) == 2
    both = compare({"i_auroc": 95.0, "pro": 85.0}, ours, pro_variant="unknown")
    assert list(both["ours"]) == [90.0, 80.0, 70.0]                             # unknown: both of ours, labelled
    assert compare({"pro": 85.0}, ours, pro_variant="pooled")["ours"].tolist() == [70.0]
    with pytest.raises(ValueError, match="pro_variant"):
        compare({"pro": 85.0}, ours)
    with pytest.raises(ValueError, match="pooled"):
        our_pro_metrics("made up")


def test_coverage_accounts_for_every_table_and_names_real_sections():
    import yaml

    from rdlib.paths import resource
    from rdlib.results import coverage, load_paper_numbers, not_reproduced

    listed = yaml.safe_load(resource("coverage.yaml").read_text())
    protocols = yaml.safe_load(resource("protocols.yaml").read_text())

    def quoted(source):                     # the paper tables of a chapter's ch.paper_vs_ours (keyed by its method)
        import re

        method = re.search(r'start\("(\w+)"', source)
        if "ch.paper_vs_ours(" not in source or method is None:
            return set()
        return {e["table"] for e in protocols[method.group(1)]["paper"]}
    tables = load_paper_numbers().groupby("paper").table_id.unique()
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    for paper, entry in listed.items():
        ids = {it.get("id") for it in entry["items"]} - {None}
        assert ids == set(tables[paper]), f"{paper}: tables not accounted for {set(tables[paper]) - ids}"
        source = (notebooks / f"{entry['chapter']}.py").read_text()
        headings = {line[5:].strip() for line in source.splitlines() if line.startswith("# ## ")}
        for it in entry["items"]:
            assert ("shown" in it) != ("reason" in it), it                   # reproduced, or a reason why not
            if "shown" in it:
                assert it["shown"] in headings, f"{paper}: no section {it['shown']!r} in {entry['chapter']}"
            if it.get("id") and "shown" in it:            # read by the chapter, or by its paper_vs_ours entry
                assert f'"{it["id"]}"' in source or it["id"] in quoted(source), \
                    f"{paper}: {it['id']} listed as shown but the chapter never reads it"
        assert len(coverage(paper)) == len(entry["items"])
        assert (not_reproduced(paper)["why / note"].str.len() > 20).all()
    assert "Table 4" not in not_reproduced("rd").index and "Table VI" in not_reproduced("aand").index


def test_paper_vs_ours_and_the_protocol_table_read_protocols_yaml():
    from types import SimpleNamespace

    from rdlib.experiments import CategoryRuns
    from rdlib.methods import method_profile
    from rdlib.results import compare, load_paper_numbers, paper_row, paper_vs_ours, protocol_table

    df = load_paper_numbers()
    ours = {"i_auroc": 70.0, "i_ap": 80.0, "p_auroc": 90.0, "p_ap": 30.0, "pro_rd": 60.0}
    r1, r2 = paper_row(df, "urd_table1", "urd", dataset="mvtec_ad"), paper_row(df, "urd_table2", "urd", dataset="mvtec_ad")
    expect = compare({"i_auroc": r1.i_auroc, "i_ap": r1.i_ap, "p_auroc": r2.p_auroc, "p_ap": r2.p_ap, "pro": r2.pro},
                     ours, pro_variant=r2.pro_variant)
    pd.testing.assert_frame_equal(paper_vs_ours("urd", ours, 128), expect)
    small = paper_vs_ours("rd", ours, 64)                                  # RD reports 128² and 256²: the closer one
    assert small.loc["I-AUROC", "paper"] == paper_row(df, "rd_table1", "rd", image_size=128).i_auroc
    assert paper_vs_ours("rd", ours, 256).loc["I-AUROC", "paper"] == paper_row(df, "rd_table1", "rd", image_size=256).i_auroc
    runs = CategoryRuns({"brick": SimpleNamespace(info={"texture_source": "dtd"})}, {"coffee": "boom"})
    options = method_profile("urd", "ci")["options"]
    t = protocol_table("urd", "urd", options, {"batch_size": 4}, "embedded", runs)
    assert t.loc["data", "ours"] == "embedded, 1 categories (1 failed)"
    assert t.loc["schedule", "ours"] == f"{options['steps']} steps, batch 4"
    assert t.loc["GII", "ours"] == "sc" and t.loc["checkpoint", "ours"] == "last"     # the defaults filled in
    assert "textures: dtd" in t.loc["synthesis", "ours"]
    with pytest.raises(KeyError, match="protocols.yaml"):
        protocol_table("nope", "urd", options, {}, "embedded", runs)


def test_defect_types_average_each_defects_auroc_over_runs_and_name_the_reference_lead(tmp_path):
    from rdlib import comparison
    from rdlib.training import EvalResult

    defects = ["good"] * 4 + ["hole"] * 2 + ["warp"] * 2
    labels = np.array([d != "good" for d in defects], dtype=np.int64)

    def saved(name, scores):                        # a run folder holding only what the table reads
        d = tmp_path / name
        d.mkdir()
        EvalResult(labels, np.array(scores, float), np.zeros((8, 2, 2), np.float16), np.zeros((8, 2, 2), bool),
                   defects).save(d / "predictions.npz")
        return str(d)

    # normal scores 0, 1, 2, 3; by hand: hole at 5, 6 ranks above all four → 100; warp at 0.5, 1.5 beats 1 and 2 of
    # the four → 3 / 8 = 37.5 for the first "a" run, 100 for the second (mean 68.75); the reference the other way
    rows = pd.DataFrame([{"method": "a", "run_dir": saved("a1", [0, 1, 2, 3, 5, 6, 0.5, 1.5])},
                         {"method": "a", "run_dir": saved("a2", [0, 1, 2, 3, 5, 6, 5, 6])},
                         {"method": "ref", "run_dir": saved("r1", [0, 1, 2, 3, 0.5, 1.5, 5, 6])},
                         {"method": "ref", "run_dir": str(tmp_path / "missing")}])      # no predictions: skipped
    table, sentence = comparison.defect_types(rows, {"a": "A", "ref": "Ref"}, "ref")
    assert list(table.columns) == ["A", "Ref"] and list(table.index) == ["hole", "warp"]
    assert table.loc["hole", "A"] == pytest.approx(100.0) and table.loc["warp", "A"] == pytest.approx(68.75)
    assert table.loc["hole", "Ref"] == pytest.approx(37.5) and table.loc["warp", "Ref"] == pytest.approx(100.0)
    assert sentence == ("Ref's I-AUROC minus each method's, per defect type: A largest on warp (+31.2), smallest on "
                        "hole (-62.5) (a negative difference: the method is ahead of Ref there).")


def test_missing_values_show_as_dashes_and_failed_variants_say_why():
    from rdlib.results import missing_notes, with_dashes

    table = with_dashes(pd.DataFrame({"I-AUROC (%)": ["90.0 ± 1.0", "failed"], "paper I-AUROC": [98.5, np.nan]},
                                     index=["efficientnet", "resnet18"]))
    assert table.loc["resnet18", "paper I-AUROC"] == "—" and table.loc["efficientnet", "paper I-AUROC"] == 98.5
    grid = pd.DataFrame({"variant": ["efficientnet", "resnet18", "resnet18"], "status": ["trained", "failed", "failed"],
                         "error": ["", "RuntimeError: no ImageNet weights for resnet18\nTraceback ...", "other"]})
    assert missing_notes(table, grid) == ("_— in a paper column: the paper reports no number for that row; "
                                          "resnet18 failed: RuntimeError: no ImageNet weights for resnet18._")
    assert missing_notes(with_dashes(pd.DataFrame({"I-AUROC (%)": ["90.0"]}, index=["a"])), grid) == ""
    from rdlib.results import short_reason

    base = "TeacherWeightsError: weights for 'resnet50' (file resnet50-0676ba61.pth) are not available"
    online = base + " (download failed: URLError: <urlopen error [Errno -2] Name or service not known>). Looked in: /a/"
    offline = base + " (RDLIB_OFFLINE=1). Looked in: /root/.cache/torch/hub/checkpoints/; put the file there"
    assert short_reason(online) == short_reason(offline) == base       # the same footnote on every machine


def test_comparison_tables_read_the_long_table(monkeypatch):
    import rdlib.methods
    from rdlib import comparison

    rng = np.random.default_rng(0)
    rows = [{"method": m, "variant": m, "category": c, "seed": s,
             "i_auroc": base + rng.normal(0, 0.5), "p_auroc": 70.0 + rng.normal(0, 0.5), "aupro": 50.0}
            for m, base in (("a", 90.0), ("ref", 80.0)) for c in ("x", "y", "z") for s in (1, 2, 3)]
    ok = pd.DataFrame(rows)
    labels = {"a": "A", "ref": "Ref"}
    verdicts, sentence = comparison.versus_reference(ok, ["a", "ref"], "ref", labels)
    assert list(verdicts.claim) == ["A beats Ref on I-AUROC", "A beats Ref on P-AUROC"]
    assert verdicts.verdict.iloc[0] == "supported"                      # 10 points ahead in every cell
    assert sentence.startswith("The training-free reference is ahead, with the whole interval on its side, of 0 of 1")
    empty, none = comparison.versus_reference(ok, ["a"], "ref", labels)  # no reference among the methods
    assert empty.empty and none == ""
    ranks = comparison.rank_table(ok, labels)
    assert list(ranks.index) == ["A", "Ref"] and ranks.loc["A", ("I-AUROC", "cells won")] == 9
    counts, text = comparison.tally(verdicts, pd.DataFrame())
    assert counts.iloc[:, 0].sum() == len(verdicts) and text.endswith("of the papers' claims against RD / RD++")
    table = pd.DataFrame({"I-AUROC": [70.0, np.nan, 80.0]}, index=["RD", "RD++", "URD"])
    assert comparison.order_sentence(table, 128) == "mean I-AUROC of the chapters' runs at 128²: URD 80.0, RD 70.0"
    table["categories found"] = [5, 0, 3]                                 # URD's mean is over 3 categories only
    assert comparison.order_sentence(table, 128) == ("mean I-AUROC of the chapters' runs at 128²: URD 80.0 "
                                                     "(3 categories), RD 70.0")
    assert comparison.protocol_size(["rd", "urd"], "ci") == 64
    sizes = {"rd": 64, "urd": 128}
    monkeypatch.setattr(rdlib.methods, "method_profile", lambda m, p: {"options": {"image_size": sizes[m]}})
    with pytest.raises(ValueError, match="different image sizes"):
        comparison.protocol_size(["rd", "urd"], "ci")
