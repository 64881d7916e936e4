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
