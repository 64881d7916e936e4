"""Papers' numbers (``rdlib/resources/paper_reported.yaml``) next to ours: Paper | Ours | Δ tables."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

METRIC_LABELS = {"i_auroc": "I-AUROC", "i_ap": "I-AP", "p_auroc": "P-AUROC", "p_ap": "P-AP", "pro": "PRO",
                 "pro_rd": "PRO (RD per-image)", "aupro": "AUPRO@0.3 (pooled)"}
PRO_VARIANTS = {"rd_per_image": "per-image RD-code PRO (200 thresholds, FPR<0.3 rescaled by its max)",
                "pooled": "standard pooled AUPRO@0.3", "unknown": "not stated"}


def default_paper_file() -> Path:
    """The papers' numbers ship with the package (``rdlib/resources/paper_reported.yaml``), so Colab finds them too."""
    from rdlib.paths import paper_numbers_file

    return paper_numbers_file()


def load_paper_numbers(path: str | Path | None = None) -> pd.DataFrame:
    """One row per (table, method, variant, category) with the table's protocol columns and every metric."""
    path = Path(path or default_paper_file())
    if not path.is_file():
        raise FileNotFoundError(f"{path}: papers' numbers not found (rdlib/resources/paper_reported.yaml in the repository)")
    data = yaml.safe_load(path.read_text())
    rows = []
    for t in data["tables"]:
        proto = t.get("protocol", {})
        for r in t["rows"]:
            rows.append({"table_id": t["id"], "paper": t["paper"], "table": t["table"],
                         "dataset": r.get("dataset", t["dataset"]),
                         "image_size": r.get("image_size", proto.get("image_size")),
                         "backbone": r.get("backbone", proto.get("backbone")),
                         "pro_variant": proto.get("pro_variant"), "checkpoint": proto.get("checkpoint"),
                         **{k: v for k, v in r.items() if k not in ("dataset", "image_size", "backbone")}})
    return pd.DataFrame(rows)


def paper_row(df: pd.DataFrame, table_id: str, method: str, category: str = "mean", **match) -> pd.Series:
    sel = df[(df.table_id == table_id) & (df.method == method) & (df.category == category)]
    for k, v in match.items():
        sel = sel[sel[k] == v]
    if len(sel) != 1:
        raise KeyError(f"{len(sel)} rows for table={table_id} method={method} category={category} {match}")
    return sel.iloc[0]


def our_pro_metrics(pro_variant: str | None) -> tuple[str, ...]:
    """The one rule for a paper's PRO column, used by every chapter and the comparison: ours computed as that paper's
    code or text computes it (``rd_per_image`` → ``pro_rd``, ``pooled`` → ``aupro``); when the paper does not say,
    both, each labelled."""
    if pro_variant == "rd_per_image":
        return ("pro_rd",)
    if pro_variant == "pooled":
        return ("aupro",)
    if pro_variant in (None, "unknown") or pd.isna(pro_variant):
        return ("pro_rd", "aupro")
    raise ValueError(f"pro_variant={pro_variant!r}; choose from {sorted(PRO_VARIANTS)}")


def compare(paper: dict[str, float], ours: dict[str, float], metrics: list[str] | None = None,
            pro_variant: str | None = None) -> pd.DataFrame:
    """Paper | Ours | Δ (ours − paper) for each metric present in both. The paper's PRO is set beside ours by
    :func:`our_pro_metrics` (``pro_variant``: the table's protocol, e.g. ``paper_row(...).pro_variant``; required
    when the paper has a PRO); an unknown variant gives one row per candidate."""
    metrics = metrics or [m for m in ("i_auroc", "i_ap", "p_auroc", "p_ap", "pro") if m in paper and pd.notna(paper[m])]
    rows = []
    for m in metrics:
        if m == "pro" and pro_variant is None:
            raise ValueError("the paper reports PRO: pass pro_variant (its table's protocol.pro_variant) so ours is "
                             "computed the same way")
        for ours_key in (our_pro_metrics(pro_variant) if m == "pro" else (m,)):
            p, o = float(paper[m]), float(ours.get(ours_key, float("nan")))
            label = f"PRO vs ours {METRIC_LABELS[ours_key]}" if m == "pro" else METRIC_LABELS.get(m, m)
            rows.append({"metric": label, "paper": p, "ours": o, "Δ": o - p})
    return pd.DataFrame(rows).set_index("metric")


def with_paper_columns(ours: pd.DataFrame, table_id: str, methods: list, metrics=("i_auroc", "p_auroc", "pro"),
                       df: pd.DataFrame | None = None, **match) -> pd.DataFrame:
    """Add ``paper <metric>`` columns beside ours, row by row (``methods[i]`` names row i's paper row; None: none).
    ``match`` narrows a table that holds several benchmarks, e.g. ``dataset="mvtec_ad"`` (URD Table 5)."""
    df = load_paper_numbers() if df is None else df
    out = ours.copy()
    if len(methods) != len(out):
        raise ValueError(f"{len(methods)} paper methods for {len(out)} rows of the table")
    for col in metrics:
        out[f"paper {METRIC_LABELS.get(col, col)}"] = [paper_row(df, table_id, m, **match)[col] if m else float("nan")
                                                        for m in methods]
    return out


MISSING = "—"


def with_dashes(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every missing value (NaN, None) shown as "—" instead of pandas' "NaN"; the caller says below the
    table what a dash means there."""
    return df.astype(object).where(df.notna(), MISSING)


def short_reason(error: str, limit: int = 160) -> str:
    """The part of an error message a table's footnote shows: its first sentence without the trailing details in
    parentheses (where it looked, why a download failed), which differ from machine to machine."""
    import re

    first = error.strip().splitlines()[0] if error.strip() else ""
    first = re.split(r"(?<=[^.\s])\.\s", first, maxsplit=1)[0].rstrip(".")
    while True:
        trimmed = re.sub(r"\s*\((?:[^()]|\([^()]*\))*\)\s*$", "", first)
        if trimmed == first or not trimmed:
            break
        first = trimmed
    return first if len(first) <= limit else first[:limit - 1] + "…"


def missing_notes(table: pd.DataFrame, grid: pd.DataFrame | None = None) -> str:
    """What the dashes and "failed" cells of an ablation table mean, as one Markdown line: a paper column without a
    number (the paper reports no such row), and per variant whose runs all failed, its first error (from the grid's
    ``error`` column)."""
    notes = []
    paper = [c for c in table.columns if str(c).startswith("paper ")]
    if paper and (table[paper] == MISSING).any().any():
        notes.append(f"{MISSING} in a paper column: the paper reports no number for that row")
    failed = [v for v in table.index if (table.loc[v] == "failed").any()]
    if failed and grid is not None and "error" in grid:
        for v in failed:
            errors = grid.loc[(grid.variant == v) & grid.error.fillna("").astype(str).ne(""), "error"].astype(str)
            notes.append(f"{v} failed: {short_reason(errors.iloc[0]) if len(errors) else 'no error recorded'}")
    elif failed:
        notes.append("failed: every run of that variant failed")
    return ("_" + "; ".join(notes) + "._") if notes else ""


def ablation_table(grid: pd.DataFrame, rows: list, metrics, table_id: str, paper_methods: list,
                   paper_metrics=("i_auroc", "p_auroc", "pro"), df: pd.DataFrame | None = None, **match) -> pd.DataFrame:
    """The ablation variants ``rows`` of a run grid (mean ± 95 % interval over categories × seeds, in that order)
    with the paper's ``table_id`` rows beside them (``paper_methods[i]`` for row i; None: none); readable labels,
    "—" where a value is missing (:func:`missing_notes` says why)."""
    from rdlib.stats import mean_interval_table

    if grid.empty:                                       # not run in this profile: the paper's rows alone
        t = pd.DataFrame(index=list(rows))
    else:
        t = mean_interval_table(grid[grid.variant.isin(rows)], list(metrics)).loc[list(rows)]
    return with_dashes(readable(with_paper_columns(t, table_id, paper_methods, paper_metrics, df=df, **match)))


def chance_levels(predictions) -> dict[str, float]:
    """What a detector scoring at random reaches on this test set, in % (:func:`rdlib.metrics.chance_levels`):
    AUROC 50, AP the share of positives. ``predictions``: an ``EvalResult``."""
    from rdlib.metrics import chance_levels as levels

    return levels(predictions.labels, predictions.masks)


def chance_sentence(predictions_by_category: dict) -> str:
    """One sentence stating the chance levels of I-AP and P-AP over the given categories' test sets."""
    levels = [chance_levels(p) for p in predictions_by_category.values()]
    if not levels:
        return ""
    i_ap = [lv["i_ap"] for lv in levels]
    p_ap = [lv["p_ap"] for lv in levels]

    def span(v):
        lo, hi = f"{min(v):.1f}", f"{max(v):.1f}"
        return lo if lo == hi else f"{lo}–{hi}"

    return (f"Chance levels on these test sets: AUROC 50; I-AP {span(i_ap)} (the share of defective images); "
            f"P-AP {span(p_ap)} (the share of defective pixels). An AP is judged against these, not against 0.")


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """Columns named as a reader knows them, with their unit: ``i_auroc`` → ``I-AUROC (%)``."""
    return df.rename(columns={k: f"{v} (%)" for k, v in METRIC_LABELS.items()})


def coverage(paper: str) -> pd.DataFrame:
    """Every table and result figure of ``paper`` ("rd", "urd", "aand", "rd_re"), from
    ``rdlib/resources/coverage.yaml``: where its chapter reproduces it (section, at the book's scale) or why not."""
    from rdlib.paths import resource

    data = yaml.safe_load(resource("coverage.yaml").read_text())
    if paper not in data:
        raise ValueError(f"no coverage list for paper {paper!r}; choose from {sorted(data)}")
    return pd.DataFrame([{"paper's": it["item"], "in this chapter": it.get("shown", "not reproduced"),
                          "why / note": it.get("reason", it.get("note", ""))} for it in data[paper]["items"]])


def not_reproduced(paper: str) -> pd.DataFrame:
    """The part of :func:`coverage` the chapter does not reproduce, with the reason (each chapter ends with it)."""
    c = coverage(paper)
    return c[c["in this chapter"] == "not reproduced"].drop(columns="in this chapter").set_index("paper's")


def _protocols(chapter: str) -> dict:
    from rdlib.paths import resource

    data = yaml.safe_load(resource("protocols.yaml").read_text())
    if chapter not in data:
        raise KeyError(f"no protocol for {chapter!r} in rdlib/resources/protocols.yaml; chapters: {sorted(data)}")
    return data[chapter]


def _paper_size(image_size: int) -> int:
    """The paper input size quoted beside a run at ``image_size``: RD reports 128² and 256²."""
    return 128 if image_size <= 128 else 256


def paper_vs_ours(chapter: str, ours: dict[str, float], image_size: int,
                  df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper | Ours | Δ (:func:`compare`) for the paper's mean rows named in ``protocols.yaml`` (``ours``: our mean
    metrics; ``image_size``: the runs' size, for papers that report several)."""
    df = load_paper_numbers() if df is None else df
    paper, pro_variant = {}, None
    for entry in _protocols(chapter)["paper"]:
        match = {k: (_paper_size(image_size) if v == "chapter" else v) for k, v in (entry.get("match") or {}).items()}
        row = paper_row(df, entry["table"], entry["method"], **match)
        paper.update({m: row[m] for m in entry["metrics"]})
        if "pro" in entry["metrics"]:
            pro_variant = row.pro_variant
    return compare(paper, ours, pro_variant=pro_variant)


def protocol_table(chapter: str, method: str, options: dict, fit: dict, data: str, runs, **extra) -> pd.DataFrame:
    """The paper's protocol beside ours, row by row (``protocols.yaml``), ours filled from the runs' settings:
    ``options`` / ``fit`` (with the method's and the loop's defaults), ``data`` (its name), ``runs`` (a
    :class:`~rdlib.experiments.CategoryRuns`: how many categories ran, which texture source they used; or an int,
    the number of categories) and ``extra`` values the templates name (e.g. ``seeds``)."""
    from dataclasses import asdict

    from rdlib.methods import method_class
    from rdlib.training import FitConfig

    if isinstance(runs, int):
        categories, textures = f"{runs} categories", "see each run"
    else:
        done, failed = len(runs.runs), len(runs.failed)
        categories = f"{done} categories" + (f" ({failed} failed)" if failed else "")
        textures = ", ".join(sorted({str(r.info.get("texture_source")) for r in runs.runs.values()})) or "none"
    values = {**asdict(FitConfig()), **fit, **method_class(method).option_defaults(), **options, "data": data,
              "categories": categories, "textures": textures, "paper_size": _paper_size(int(options["image_size"])),
              **extra}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    rows = [(what, paper.format_map(values), ours.format_map(values))
            for what, paper, ours in _protocols(chapter)["protocol"]]
    return pd.DataFrame(rows, columns=["", "paper", "ours"]).set_index("")
