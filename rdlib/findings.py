"""The book's findings in one place: each executed chapter's "What this chapter finds" box, its glued values filled
in, collected into a Markdown page that the book's introduction includes (``notebooks/_run.py`` writes it next to
the executed notebooks). Nothing is typed: every line is the chapter's own bullet with the text its runs computed.

    text = book_findings(Path("_executed/book"), doc_prefix="/_executed/book/")
"""
from __future__ import annotations

import re
from pathlib import Path

GLUE = re.compile(r"\{glue:(md|text)\}`([^`]+)`")
BOX = re.compile(r"^#+\s+What this (chapter|comparison) finds", re.M)


def glued(nb) -> dict[str, str]:
    """Every value a notebook glued (myst-nb / scrapbook records): name → its Markdown (or plain) text."""
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            record = out.get("metadata", {}).get("scrapbook")
            if not record:
                continue
            prefix, data = record.get("mime_prefix", ""), out.get("data", {})
            text = data.get(prefix + "text/markdown", data.get(prefix + "text/plain"))
            if text is None:
                continue
            text = "".join(text) if isinstance(text, list) else str(text)
            if f"{prefix}text/markdown" not in data and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
                text = text[1:-1]                          # a glued str's plain form is its repr
            values[record["name"]] = text
    return values


def findings_box(nb) -> tuple[str, list[str]]:
    """The chapter's title and the bullets of its findings box with every glued value filled in (a value the run
    did not glue is shown as "(not computed in this run)")."""
    values = glued(nb)
    title, bullets = "", []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        src = cell.source
        if not title:
            m = re.search(r"^#\s+(.+)$", src, re.M)
            title = m.group(1).strip() if m else ""
        box = BOX.search(src)
        if not box:
            continue
        after = src[box.end():]
        nxt = re.search(r"^#+\s", after, re.M)
        for line in (after[:nxt.start()] if nxt else after).splitlines():
            if line.lstrip().startswith("- ") and "{glue:" in line:
                bullets.append(GLUE.sub(lambda g: values.get(g.group(2), "(not computed in this run)").strip(), line.strip()))
        break
    return title, bullets


def book_findings(executed: Path, names=None, doc_prefix: str = "") -> str:
    """A Markdown page of every executed chapter's findings box in ``executed`` (``NN_name.ipynb``, in order, or
    ``names``), each under its title linked with ``{doc}`` to ``doc_prefix + name``. A chapter without a box
    is left out."""
    import nbformat

    parts = []
    paths = [executed / f"{n}.ipynb" for n in names] if names else sorted(executed.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        if not path.is_file():
            continue
        title, bullets = findings_box(nbformat.read(path, as_version=4))
        if bullets:
            parts.append(f"**{{doc}}`{title} <{doc_prefix}{path.stem}>`**\n\n" + "\n".join(bullets))
    return "\n\n".join(parts) if parts else "_No chapter has been executed in this build, so there are no findings yet._"


def write_findings(executed: Path, doc_prefix: str = "/_executed/book/") -> Path:
    """Write :func:`book_findings` of ``executed`` to ``executed / "findings.md"`` (what the introduction includes)."""
    path = Path(executed) / "findings.md"
    path.write_text(book_findings(Path(executed), doc_prefix=doc_prefix) + "\n")
    return path


__all__ = ["book_findings", "findings_box", "glued", "write_findings"]


def conclusion_text(method: str, scale: str, plateaus: dict, verdicts: list, detection: str = "") -> str:
    """A chapter's closing paragraph, from the objects its body printed: ``plateaus`` (label → :class:`~rdlib.plateau.
    Plateau`), every :class:`~rdlib.claims.Verdict` it judged, its detection finding; ``scale``: what the runs were
    (size, data, teacher)."""
    import numpy as np
    import pandas as pd

    parts = [f"**In short.** {method} was run here at {scale}."]
    if detection:
        parts.append(detection.strip().rstrip(".")[0].upper() + detection.strip().rstrip(".")[1:] + ".")
    trained = [p for p in plateaus.values() if len(p.categories)]
    if trained:
        done = [f"{p.label} by step {p.settled_at} of {p.steps}" for p in trained if p.converged]
        not_done = [f"{p.label} ({p.steps} steps)" for p in trained if not p.converged]
        parts.append(("Trained to its plateau: " + ", ".join(done) + ". " if done else "")
                     + ("Not at its plateau, so none of its claims is judged: " + ", ".join(not_done) + "."
                        if not_done else "").strip())
    if not verdicts:
        parts.append("No claim of the paper was judged on this page.")
        return " ".join(p for p in parts if p)
    counts = pd.Series([v.verdict for v in verdicts]).value_counts()
    order = [k for k in ("supported", "contradicted", "inconclusive", "not judged") if k in counts]
    parts.append(f"Of the {len(verdicts)} claims this page weighed, "
                 + ", ".join(f"{counts[k]} {'were' if counts[k] > 1 else 'was'} {k}" for k in order) + ".")
    for kind in ("supported", "contradicted"):
        named = [v.claim for v in verdicts if v.verdict == kind]
        if named:
            parts.append(f"{kind.capitalize()}: " + "; ".join(named) + ".")
    unresolved = [v.detectable for v in verdicts if v.verdict == "inconclusive" and np.isfinite(v.detectable)]
    if unresolved:
        parts.append(f"The inconclusive ones are differences these designs could not resolve — the smallest true "
                     f"difference they would detect is {min(unresolved):.1f} to {max(unresolved):.1f} points — not "
                     "evidence that the variants are equal.")
    reasons = pd.Series([v.reason for v in verdicts if v.verdict == "not judged" and v.reason]).value_counts()
    if len(reasons):
        parts.append(f"Not judged, most often because {reasons.index[0].rstrip('.')}.")
    parts.append("All of it describes this implementation at this budget, not the paper's own result (the *Paper vs "
                 "ours* section lists what differs).")
    return " ".join(p for p in parts if p)
