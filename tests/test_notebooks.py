"""Notebooks: pairing, structure, execution in the ci profile, and the book built from the executed notebooks.

The executed notebooks land in ``_executed/ci/`` where ``make test`` then re-runs them with nbval.
"""
import copy
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NAMES = sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.py"))
OUT = ROOT / "_executed" / "ci"


def _cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_there_are_notebooks():
    assert NAMES[:3] == ["00_data", "01_rd", "02_kernels"]


@pytest.mark.parametrize("name", NAMES)
def test_py_and_ipynb_are_in_sync(name):
    py, ipynb = NB_DIR / f"{name}.py", NB_DIR / f"{name}.ipynb"
    assert ipynb.is_file(), f"{ipynb} missing: run `jupytext --sync {py}`"
    a, b = jupytext.read(py), jupytext.read(ipynb)
    assert _cells(a) == _cells(b), f"{py} and {ipynb} differ: run `jupytext --sync {py}`"
    assert all(not c.get("outputs") for c in b.cells if c.cell_type == "code"), f"{ipynb} has outputs: strip them"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_structure(name):
    nb = jupytext.read(NB_DIR / f"{name}.py")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "PROFILE" in tagged[0].source
    assert "colab.research.google.com/github" in nb.cells[0].source, "first cell opens with an Open-in-Colab link"
    assert "colab-badge.svg" not in nb.cells[0].source, "a text link: Colab's badge image is broken offline"
    assert "environment_footer" in nb.cells[-1].source, "last cell prints the environment footer"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    # a computed conclusion last: Chapter.conclusion, or a paragraph built from the chapter's glued findings
    heads = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## Conclusion")]
    assert len(heads) == 1 and heads[0] >= len(nb.cells) - 4, "one '## Conclusion' section just before the footer"
    body = "\n".join(c.source for c in nb.cells[heads[0]:-2])
    assert "ch.conclusion(" in body or "_find_" in body, "the conclusion is computed, not typed"


def swallowed_code(markdown: str) -> list[str]:
    """Indented lines that continue a paragraph of ``markdown``: Markdown renders them as text of that paragraph,
    so a code line commented into a markdown cell by mistake shows as prose and never runs."""
    import re

    found, fenced, lines = [], False, markdown.splitlines()
    for prev, line in zip(lines, lines[1:]):
        if prev.lstrip().startswith(("```", "~~~", "$$")):
            fenced = not fenced                                       # inside a fence or a display equation: not prose
        if not fenced and re.match(r" {4,}\S", line) and prev.strip() and not prev.startswith((" ", "#"))\
                and not re.match(r"\s*([-*+]|\d+\.)\s", prev):
            found.append(line)
    return found


def test_swallowed_code_finds_a_code_line_in_a_paragraph():
    assert swallowed_code("A paragraph ends here.\n    display(table)\n") == ["    display(table)"]
    assert swallowed_code("A paragraph.\n\n    a code block\n- a list item\n    its continuation\n") == []
    assert swallowed_code("```python\ndef f():\n    return 1\n```\n$$\na\n    + b\n$$\n") == []


@pytest.mark.parametrize("name", NAMES)
def test_no_code_is_swallowed_by_a_markdown_cell(name):
    nb = jupytext.read(NB_DIR / f"{name}.py")
    found = [line for c in nb.cells if c.cell_type == "markdown" for line in swallowed_code(c.source)]
    assert not found, f"{name}.py: code inside a markdown cell (it renders as text and never runs): {found}"


def code_share(nb) -> float:
    """Non-blank lines in code cells over non-blank lines in all cells (the parameters and Colab cells included)."""
    lines = {"code": 0, "markdown": 0}
    for c in nb.cells:
        lines[c.cell_type] = lines.get(c.cell_type, 0) + sum(1 for line in c.source.splitlines() if line.strip())
    return lines["code"] / (lines["code"] + lines["markdown"])


# Every chapter reads as text: at most 40 % of its lines are code (issue #28); the plumbing lives in rdlib.
READS_AS_TEXT = NAMES


@pytest.mark.parametrize("name", READS_AS_TEXT)
def test_chapter_reads_as_text(name):
    nb = jupytext.read(NB_DIR / f"{name}.py")
    assert code_share(nb) <= 0.40, f"{name}: {code_share(nb):.0%} of its lines are code; move plumbing into rdlib"


def test_code_share_counts_code_and_markdown_lines():
    nb = jupytext.reads("# %% [markdown]\n# one\n#\n# two\n\n# %%\nx = 1\n\ny = 2\n", fmt="py:percent")
    assert code_share(nb) == pytest.approx(0.5)                  # 2 code lines, 2 prose lines, blanks not counted


def _runner():
    spec = importlib.util.spec_from_file_location("nb_run", NB_DIR / "_run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def executed():
    runner = _runner()
    if OUT.exists():
        shutil.rmtree(OUT)
    failures = []
    for name in NAMES:
        try:
            runner.execute(name, runner.load_params("ci", name), OUT / f"{name}.ipynb")
        except Exception as e:  # noqa: BLE001 - report every failing notebook, not just the first
            failures.append(f"{name}: {type(e).__name__}: {str(e)[-3000:]}")
    assert not failures, "\n\n".join(failures)
    from rdlib.findings import write_findings

    write_findings(OUT)                                 # as notebooks/_run.py does after executing the chapters
    return OUT


@pytest.mark.notebooks
def test_notebooks_execute_in_ci_profile(executed):
    import nbformat

    for name in NAMES:
        nb = nbformat.read(executed / f"{name}.ipynb", as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
        shown = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert 'PROFILE = "ci"' in shown                          # the values that ran, not the defaults
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors


def _jupyter_book_build(book: Path, strict: bool = True):
    jb = Path(sys.executable).with_name("jupyter-book")
    flags = ["-W", "-n", "--keep-going"] if strict else []
    proc = subprocess.run([str(jb), "build", str(book), *flags], capture_output=True, text=True, timeout=600)
    return proc


@pytest.fixture(scope="module")
def built_book(executed, tmp_path_factory):
    """The book built from the ci-profile notebooks with warnings as errors; yields its html folder."""
    book = tmp_path_factory.mktemp("book_root")
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / f, book / f)
    shutil.copytree(ROOT / "book", book / "book")
    shutil.copytree(ROOT / "rdlib", book / "rdlib", ignore=shutil.ignore_patterns("__pycache__"))   # literalinclude
    (book / "benchmarks" / "results").mkdir(parents=True)                        # the intro's GPU table
    shutil.copy(ROOT / "benchmarks" / "results" / "gpu_requirements.md", book / "benchmarks" / "results")
    shutil.copytree(executed, book / "_executed" / "book")
    proc = _jupyter_book_build(book)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return book / "_build" / "html"


@pytest.mark.notebooks
def test_book_builds_from_executed_notebooks_with_warnings_as_errors(built_book):
    assert (built_book / "index.html").is_file()
    for name in NAMES:
        assert (built_book / "_executed" / "book" / f"{name}.html").is_file()
    import re

    intro = (built_book / "book" / "intro.html").read_text()           # index.html redirects to it
    assert "What the book finds" in intro and "{glue" not in intro and "not computed in this run" not in intro
    for name in ("01_rd", "03_urd", "04_aand", "05_rdre", "06_comparison"):   # each box, linked to its chapter
        assert re.search(rf'href="(\.\./)?_executed/book/{name}\.html"', intro), name
    assert "trained methods converged at their schedules" in intro          # the comparison's glued plateau line


def _browser_or_skip():
    from browser_check import chromium_path

    if importlib.util.find_spec("playwright") is None:
        pytest.skip("BROWSER TEST SKIPPED: playwright is not installed (pip install playwright)")
    if chromium_path() is None:
        pytest.skip("BROWSER TEST SKIPPED: no Chromium on this machine; install Debian's `chromium` "
                    "(make test does so where apt-get runs as root)")


@pytest.mark.notebooks
def test_book_in_a_browser_at_desktop_and_phone_widths(built_book):
    """Every page in headless Chromium at 1280 px and 390 px: no console error, no failed local request, no broken
    image, no raw markdown table, no equation left as raw TeX, no truncated cell, no NaN cell, no printed line
    repeated more than a few times, a findings box on the introduction and every chapter, no page wider than the
    screen, no text cut off, no code past the column, no wide table or figure without a scroll hint, no figure shrunk
    below 75 % of its size, a phone table of contents that opens. Screenshots of every page at both widths land in _build/screenshots/."""
    _browser_or_skip()
    from browser_check import check_site

    shots = ROOT / "_build" / "screenshots"
    if shots.exists():
        shutil.rmtree(shots)
    findings = ("book/intro.html", *(f"_executed/book/{n}.html" for n in NAMES))
    report = check_site(built_book, shots, findings=findings)
    chapters = [p for p in report.pages if p.startswith("_executed/book/")]
    assert len(chapters) == len(NAMES)
    assert len(report.screenshots) == 2 * len(report.pages)
    assert not report.problems, "\n".join(map(str, report.problems))


TINY_NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {},
         "source": "# A broken page\n\n![a figure](missing.png)\n\n$$M = 1 - \\frac{a}{b}$$\n"},
        {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": "show()",
         "outputs": [
             {"output_type": "display_data", "metadata": {},
              "data": {"text/markdown": "| metric | value |\n|---|---|\n| I-AUROC | 90.0 |\n",
                       "text/plain": "<markdown>"}},
             {"output_type": "display_data", "metadata": {},
              "data": {"text/html": "<table><tr><th>source</th><th>I-AUROC</th></tr><tr><td>camera, moon, astro...</td>"
                                    "<td>nan ± nan</td></tr><tr><td>the `urd` preset</td><td>1</td></tr></table>",
                       "text/plain": "<table>"}},
             {"output_type": "stream", "name": "stderr",
              "text": "texture source: Debian packages (94 images), not DTD\n" * 5 + "done\n"},
             {"output_type": "stream", "name": "stdout",                 # as rdlib.viz.show_figure prints it
              "text": "figure layout: texts overlap: 'grass' and 'gravel'\n"},
             {"output_type": "display_data", "metadata": {},             # 30 columns: wider than any column
              "data": {"text/html": "<table><tr>" + "".join(f"<th>column {i}</th>" for i in range(30)) + "</tr>"
                                    "<tr>" + "".join(f"<td>{i}.0</td>" for i in range(30)) + "</tr></table>",
                       "text/plain": "<table>"}},
         ]},
        {"cell_type": "markdown", "metadata": {},
         "source": "A name no line can break: `rdlib.methods.a_very_long_module_name.a_very_long_function_name_too`, "
                   "and a line in a box that clips it (as the theme's box clips an inline equation):\n\n"
                   "<div style=\"overflow: hidden; white-space: nowrap\">" + "a sentence that runs on " * 20
                   + "</div>\n"},
        {"cell_type": "code", "execution_count": 2, "metadata": {}, "outputs": [],
         "source": "table = compare(runs, " + ", ".join(f"option_{i}=True" for i in range(20)) + ")"},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


def test_the_books_figure_width_rule_is_the_browser_tests():
    """book/_static/rdlib.js keeps a figure at the width below which the browser test calls it too small to read."""
    import re

    sys.path.insert(0, str(ROOT / "tests"))
    from browser_check import MIN_FIGURE_SCALE

    js = (ROOT / "book" / "_static" / "rdlib.js").read_text()
    assert float(re.search(r"var MIN_FIGURE_SCALE = ([0-9.]+);", js).group(1)) == MIN_FIGURE_SCALE


def _png(width: int, height: int) -> str:
    """A grey PNG of ``width`` × ``height`` pixels, base64-encoded as a notebook output holds it."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.notebooks
def test_browser_check_catches_a_broken_image_a_raw_table_and_a_truncated_cell(tmp_path):
    """The browser test can fail: a tiny book whose notebook renders markdown as CommonMark (the footer bug this
    book once had), shows an image that does not exist, a pandas-truncated cell, an equation that MathJax, loaded
    from its CDN, never typesets offline, a figure's layout problem, and — without the book's stylesheet — an
    unbreakable name that widens the page, a line cut off by a box that clips it (as the theme's box clips a long
    inline equation), a code line past the column, a wide table with no scroll hint, a figure shrunk to a phone's
    width and an equation that scrolls with no hint."""
    _browser_or_skip()
    import json

    from browser_check import check_site

    book = tmp_path / "tiny"
    book.mkdir()
    shutil.copytree(ROOT / "book" / "_ext", book / "_ext")          # the book's own fixes: the intro page is clean
    # favicon only: jupyter-book would include any .js under the root _static (the book's MathJax among them)
    # and without the book's layout stylesheet (rdlib_reader_layout off below): the page breaks every layout rule
    shutil.copytree(ROOT / "book" / "_static", book / "_static", ignore=shutil.ignore_patterns("mathjax", "rdlib.*"))
    (book / "_config.yml").write_text("title: tiny\nexecute:\n  execute_notebooks: 'off'\n"
                                      "html:\n  favicon: _static/favicon.svg\n"
                                      "sphinx:\n  local_extensions:\n    rdlib_book: _ext\n"
                                      "  config:\n    html_context: {default_mode: auto}\n"
                                      "    nb_render_markdown_format: commonmark\n"
                                      "    rdlib_reader_layout: false\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: broken\n")
    (book / "intro.md").write_text("# Tiny\n\nA clean page.\n")
    notebook = copy.deepcopy(TINY_NOTEBOOK)     # plus a figure as wide as the book's column (680 px): the theme
    png = _png(680, 120)                        # shrinks it on the phone; the same one held at its width overflows
    notebook["cells"][1]["outputs"] += [
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": png, "text/plain": "<Figure>"}},
        {"output_type": "display_data", "metadata": {},
         "data": {"text/html": f'<img style="max-width: none" src="data:image/png;base64,{png}">', "text/plain": "<img>"}},
        {"output_type": "display_data", "metadata": {},       # an equation as MathJax typesets it, wider than a phone
         "data": {"text/html": '<div class="math"><mjx-container jax="SVG" display="true"><svg width="900" '
                               'height="24"><rect width="900" height="24"/></svg></mjx-container></div>',
                  "text/plain": "<math>"}}]
    (book / "broken.ipynb").write_text(json.dumps(notebook))
    proc = _jupyter_book_build(book, strict=False)   # -W would refuse the missing image
    html = book / "_build" / "html"
    assert (html / "broken.html").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = check_site(html, pages=["intro.html", "broken.html"], findings=("broken.html",))
    kinds = {(p.page, p.kind) for p in report.problems}
    for kind in ("broken image", "raw markdown table", "truncated cell", "failed request", "raw TeX",
                 "equations not typeset",                  # its MathJax comes from the CDN: unreachable offline
                 "missing value shown as NaN", "repeated output line", "no findings box", "figure layout", "raw backticks",
                 "page wider than the screen", "text cut off", "code wider than the column",
                 "wide table without a scroll hint", "figure too small to read", "wide figure without a scroll hint",
                 "wide equation without a scroll hint"):
        assert ("broken.html", kind) in kinds, (kind, report.problems)
    assert not [p for p in report.problems if p.page == "intro.html"], report.problems


def test_sweep_survives_a_failing_value(tmp_path, monkeypatch, capsys):
    runner = _runner()
    calls = []

    def fake_execute(name, params, out, log_output=False):
        calls.append(params["CATEGORIES"])
        if params["CATEGORIES"] == ["bad"]:
            raise RuntimeError("boom")

    monkeypatch.setattr(runner, "execute", fake_execute)
    rc = runner.main(["--profile", "ci", "--only", "01_rd", "--out", str(tmp_path), "--sweep", "CATEGORIES=brick,bad,coffee"])
    assert rc == 1 and calls == [["brick"], ["bad"], ["coffee"]]
    assert "FAILED" in capsys.readouterr().out


def test_the_parameters_cell_shows_the_values_that_ran():
    runner = _runner()
    source = ('PROFILE = "book"                  # the profile\n'
              'CATEGORIES = ["brick",\n'
              '              "grass"]            # not this comment\n'
              'EVERY = {"rd": 5}                 # first line\n'
              '                                  # its continuation\n'
              'SEEDS = [111]                     # kept as it is\n'
              'ROOT = None')
    shown = runner.parameters_as_run(source, {"PROFILE": "ci", "CATEGORIES": ["coffee"], "EVERY": {"rd": 1},
                                              "ROOT": "/data/x", "UNUSED": 3})
    assert shown.splitlines() == ['PROFILE = "ci"                    # the profile',
                                  'CATEGORIES = ["coffee"]',
                                  'EVERY = {"rd": 1}                 # first line',
                                  '                                  # its continuation',
                                  'SEEDS = [111]                     # kept as it is',
                                  'ROOT = "/data/x"']
    ns = {}
    exec(shown, ns)                                               # still valid Python, holding the values that ran
    assert (ns["PROFILE"], ns["CATEGORIES"], ns["EVERY"], ns["ROOT"]) == ("ci", ["coffee"], {"rd": 1}, "/data/x")
    assert runner.parameters_as_run(source, {}) == source


def test_repeated_lines_counts_long_identical_printed_lines_across_outputs():
    sys.path.insert(0, str(ROOT / "tests"))
    from browser_check import repeated_lines

    worker = "texture source: Debian packages (94 images), not DTD"
    outputs = [f"{worker}\nrun 1\n{worker}", f"  {worker}  \n{worker}\nshort\nshort\nshort\nshort\nshort"]
    assert repeated_lines(outputs) == {worker: 4}                    # short lines (a table's rule) do not count
    assert repeated_lines(outputs, max_repeats=4) == {}
