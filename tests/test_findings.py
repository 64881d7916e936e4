"""The introduction's findings (rdlib.findings): each chapter's findings box with its glued values filled in."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from rdlib.findings import book_findings, findings_box, glued


def _record(name, text, markdown=True):
    prefix = "application/papermill.record/"
    data = {prefix + "text/markdown": text} if markdown else {prefix + "text/plain": repr(text)}
    return new_output("display_data", data=data, metadata={"scrapbook": {"mime_prefix": prefix, "name": name}})


def _chapter(values: dict, box=True):
    intro = ("# RD: a chapter\n\nSome text.\n\n" + ("## What this chapter finds\n\nComputed here.\n\n"
             "- **Detection** (section 5): {glue:md}`rd_find_detection`.\n"
             "- **Size**: {glue:text}`rd_size` images\n"
             "- a bullet without a value\n\n## 1. Next section\n\n- **Not a finding**: {glue:md}`rd_find_other`\n"
             if box else ""))
    cell = new_code_cell("glue(...)")
    cell.outputs = [_record(k, v, markdown=not k.endswith("size")) for k, v in values.items()]
    return new_notebook(cells=[new_markdown_cell(intro), cell])


def test_glued_reads_markdown_and_unquotes_plain_text():
    nb = _chapter({"rd_find_detection": "mean I-AUROC **89.6**", "rd_size": "128²"})
    assert glued(nb) == {"rd_find_detection": "mean I-AUROC **89.6**", "rd_size": "128²"}


def test_the_box_is_the_bullets_of_its_section_with_values_filled_in():
    nb = _chapter({"rd_find_detection": "mean I-AUROC 89.6", "rd_size": "128²", "rd_find_other": "x"})
    title, bullets = findings_box(nb)
    assert title == "RD: a chapter"
    assert bullets == ["- **Detection** (section 5): mean I-AUROC 89.6.", "- **Size**: 128² images"]
    _, missing = findings_box(_chapter({"rd_size": "128²"}))
    assert missing[0] == "- **Detection** (section 5): (not computed in this run)."


def test_book_findings_link_each_chapter_and_skip_those_without_a_box(tmp_path):
    nbformat.write(_chapter({"rd_find_detection": "89.6", "rd_size": "128²"}), tmp_path / "01_rd.ipynb")
    nbformat.write(_chapter({}, box=False), tmp_path / "00_data.ipynb")
    text = book_findings(tmp_path, doc_prefix="/_executed/book/")
    assert text == ("**{doc}`RD: a chapter </_executed/book/01_rd>`**\n\n"
                    "- **Detection** (section 5): 89.6.\n- **Size**: 128² images")
    assert "no findings yet" in book_findings(tmp_path / "empty")


def test_the_conclusion_is_written_from_the_verdicts_and_plateaus_the_page_printed():
    import pandas as pd

    from rdlib.claims import Verdict
    from rdlib.findings import conclusion_text
    from rdlib.plateau import plateau

    def curves(values):
        return pd.DataFrame([{"category": c, "step": s, "i_auroc": v} for c in "abc"
                             for s, v in zip([50, 100, 150, 200, 250, 300], values)])

    plateaus = {"URD": plateau(curves([70, 80, 85, 85, 85, 85]), "URD"),
                "RD-RE": plateau(curves([50, 60, 70, 80, 90, 100]), "RD-RE")}
    verdicts = [Verdict("URD beats RD on I-AUROC", "URD", "RD", "i_auroc", "supported", detectable=3.0),
                Verdict("URD beats RD on P-AUROC", "URD", "RD", "p_auroc", "inconclusive", detectable=4.2),
                Verdict("SA beats SC on P-AP", "SA", "SC", "p_ap", "inconclusive", detectable=2.5),
                Verdict("RD-RE beats RD", "RD-RE", "RD", "i_auroc", "not judged", reason="'RD-RE' not trained to its plateau"),
                Verdict("E–T–S beats T–S", "E", "T", "i_auroc", "contradicted", detectable=1.0)]
    text = conclusion_text("URD", "128² on the embedded benchmark", plateaus, verdicts, "mean I-AUROC 80.3 over 5.")
    assert text.startswith("**In short.** URD was run here at 128² on the embedded benchmark. Mean I-AUROC 80.3 over 5.")
    assert "Trained to its plateau: URD by step 150 of 300." in text
    assert "Not at its plateau, so none of its claims is judged: RD-RE (300 steps)." in text
    assert ("Of the 5 claims this page weighed, 1 was supported, 1 was contradicted, 2 were inconclusive, 1 was not "
            "judged.") in text
    assert "Supported: URD beats RD on I-AUROC." in text and "Contradicted: E–T–S beats T–S." in text
    assert "would detect is 2.5 to 4.2 points" in text                       # the inconclusive ones' range
    assert "Not judged, most often because 'RD-RE' not trained to its plateau." in text
    assert conclusion_text("X", "64²", {}, []).endswith("No claim of the paper was judged on this page.")
