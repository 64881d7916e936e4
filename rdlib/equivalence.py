"""rdlib against the papers' official code, as the chapters show it.

The harness in ``benchmarks/official/`` (``python -m benchmarks.official NAME CHECKOUT``) imports an official
repository from a checkout, gives its models and rdlib's the same random weights, feeds both the same inputs and
compares features, each loss term, gradients, one optimizer step, the anomaly map and the score. It writes
``benchmarks/results/official/NAME.json`` naming the official commit, rdlib's commit and the machine; the book
builds without the official code and reads those files.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rdlib.paths import checkout_root

REPOSITORIES = {"rd4ad": "hq-deng/RD4AD", "rdpp": "tientrandinh/Revisiting-Reverse-Distillation",
                "urd": "hito2448/URD", "aand": "Hui-design/AAND"}


def results_dir() -> Path | None:
    root = checkout_root()
    return root / "benchmarks" / "results" / "official" if root else None


def load_equivalence(name: str, folder: str | Path | None = None) -> dict | None:
    """The harness's result for ``name`` (one of :data:`REPOSITORIES`), or None when it has not been run."""
    if name not in REPOSITORIES:
        raise ValueError(f"unknown official repository {name!r}; choose from {sorted(REPOSITORIES)}")
    folder = Path(folder) if folder else results_dir()
    path = folder / f"{name}.json" if folder else None
    return json.loads(path.read_text()) if path and path.is_file() else None


def _sci(x) -> str:
    return "n/a" if x is None else ("0" if x == 0 else f"{x:.1e}".replace("e-0", "e-"))


def _tolerance(row: dict) -> str:
    if "tolerance_abs" in row:
        return f"{_sci(row['tolerance_abs'])} absolute"
    if "tolerance_std" in row:
        return f"{row['tolerance_std']:.0%} of the std"
    return f"{_sci(row['tolerance'])} relative"


def equivalence_table(name: str, folder: str | Path | None = None) -> tuple[str, pd.DataFrame | None]:
    """(a Markdown sentence saying what was compared, against which commits and where; the per-component table).

    The table has one row per component (features per level, each loss term, gradients, parameters after one
    optimizer step, anomaly map, image score) with the largest absolute and relative difference and the verdict."""
    r = load_equivalence(name, folder)
    repo = REPOSITORIES[name]
    if r is None:
        return (f"The equivalence check against [{repo}](https://github.com/{repo}) has not been run on this checkout: "
                f"`python -m benchmarks.official {name} /path/to/clone` writes it.", None)
    rows = r["components"]
    table = pd.DataFrame({"component": [c["component"] for c in rows],
                          "max abs. difference": [_sci(c["max_abs"]) for c in rows],
                          "max rel. difference": [_sci(c["max_rel"]) for c in rows],
                          "tolerance": [_tolerance(c) for c in rows],
                          "verdict": [c["verdict"] for c in rows]}).set_index("component")
    n_equal = sum(c["verdict"] == "equal" for c in rows)
    w = r["weights"]
    unused = _code_names("; ".join(f"{n} {why}" for why, n in w.get("official_unused", {}).items()))
    s = r["setup"]
    rd = r["rdlib"]
    sentence = (
        f"**{n_equal} of {len(rows)} components equal** within their tolerance (float32 rounding: "
        f"{_sci(r['tolerance_rel'])} relative to the official tensor's largest value) "
        f"against [{repo}](https://github.com/{repo}) at commit `{r['official']['commit'][:10]}`, run on "
        f"{r['date']} by rdlib commit `{(rd['commit'] or 'unknown')[:10]}`"
        f"{' with uncommitted changes to rdlib' if rd.get('rdlib_modified') else ''} on a CPU "
        f"({r['machine']['cpu']}, torch {r['machine']['torch']}). Setup: {s['teacher']}, {s['image_size']}², "
        f"batch {s['batch']}, {s['input']}. Weights: all {w['mapped']} rdlib tensors mapped one-to-one onto the "
        f"official ones ({w['parameters']['rdlib']:,} parameters on each side)"
        + (f"; official tensors its forward never reads: {unused}" if unused else "") + ".")
    if s.get("note"):
        sentence += " " + _code_names(s["note"])
    return sentence, table


def _code_names(text: str) -> str:
    """Python dunder names (``__init__``) as inline code, so that Markdown does not read them as bold."""
    import re

    return re.sub(r"(?<!`)\b(__\w+__)\b(?!`)", r"`\1`", text)
