"""Probes of what trained models learned, one per paper chapter that needs one (URD: the teacher against the expert;
AAND: residual intensities and feature separation). The book imports them; no method does, so editing a probe
changes no run key (:mod:`rdlib.provenance`)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from rdlib.anomaly_map import cosine_distance_map
from rdlib.methods.urd.loss import level_masks
from rdlib.models import create_teacher
from rdlib.runs import Run, build_datasets


def urd_expert_distances(run: Run, device=None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per level k (1, 2, 3), the per-patch distance D(T(x)_k, E(x)_k) = 1 − cos between the trained teacher T and
    the expert E (the teacher's initial network, rebuilt from the run's options) over every test image of the run,
    split into patches outside and inside the real defects: ``{k: (normal, defect)}``. Before training T = E and
    every distance is 0."""
    method = run.load_method(device)
    options = run.spec.options
    dev = next(method.model.teacher.parameters()).device
    expert = create_teacher(options.get("teacher", "efficientnet_lite0"), options.get("weights", "imagenet"),
                            activation=options.get("teacher_activation", "none")).to(dev).eval()
    _, test = build_datasets(run.spec)
    parts: dict[int, dict[str, list]] = {}
    for i in range(len(test)):
        item = test[i]
        x = item["image"][None].to(dev)
        with torch.no_grad():
            t, e = method.model.teacher(x), expert(x)
        masks = level_masks(item["mask"][None].to(dev), [f.shape[-2:] for f in t])
        for k, (a, b, m) in enumerate(zip(t, e, masks), start=1):
            d = cosine_distance_map(a, b).flatten().cpu().numpy()
            inside = m.flatten().cpu().numpy() > 0.5
            parts.setdefault(k, {"normal": [], "defect": []})
            parts[k]["normal"].append(d[~inside])
            parts[k]["defect"].append(d[inside])
    return {k: (np.concatenate(v["normal"]), np.concatenate(v["defect"])) for k, v in parts.items()}


def aand_residual_curves(runs) -> pd.DataFrame:
    """AAND's stage-1 (RAA) history of every category's run (``CategoryRuns``): one row per (category, epoch) with
    the mean squared residual Δ and the gated residual ŵ ⊙ Δ on normal and anomalous training images."""

    return pd.DataFrame([{"category": cat, **h} for cat, run in runs.runs.items() for h in run.history
                         if h.get("stage") == "raa"])


def aand_residual_figure(curves) -> pd.DataFrame:
    """The residual intensities of :func:`aand_residual_curves` per epoch (log scale, one line per category,
    normal blue, anomalous red), shown; returns per category the last/first-epoch ratio of each and the gated
    residual's anomalous/normal ratio at the last epoch."""
    import matplotlib.pyplot as plt

    from rdlib.viz import show_figure

    parts = [("delta", "Δ (paper's formula)"), ("gated", "ŵ ⊙ Δ (added at test time)")]
    fig, axes = plt.subplots(1, 2, figsize=(6.8, 2.8), layout="constrained")
    for ax, (prefix, title) in zip(axes, parts):
        for cat, g in curves.groupby("category"):
            for part, colour in (("normal", "tab:blue"), ("anomalous", "tab:red")):
                if f"{prefix}_{part}" in g:
                    ax.plot(g["epoch"], g[f"{prefix}_{part}"], color=colour, alpha=0.7, lw=1, marker="o", ms=2,
                            label=part if cat == curves.category.iloc[0] else None)
        ax.set_yscale("log")
        ax.set_xlabel("stage-1 epoch")
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("mean squared residual")
    fig.suptitle("Residual intensity per epoch, one line per category", fontsize=10)
    handles, names = axes[0].get_legend_handles_labels()          # under the panels, off the curves
    fig.legend(handles, names, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    show_figure(fig)
    first, last = curves.groupby("category").first(), curves.groupby("category").last()
    names = {"delta_normal": "Δ normal", "delta_anomalous": "Δ anomalous", "gated_normal": "ŵ⊙Δ normal",
             "gated_anomalous": "ŵ⊙Δ anomalous"}
    ratios = {f"{label}: last / first epoch": last[c] / first[c] for c, label in names.items() if c in curves}
    if {"gated_anomalous", "gated_normal"} <= set(curves):
        ratios["ŵ⊙Δ anomalous / normal, last epoch"] = last["gated_anomalous"] / last["gated_normal"]
    return pd.DataFrame(ratios).round(2)


def aand_feature_spaces(run, device=None) -> tuple[dict, object, object]:
    """The two feature spaces AAND compares — the vanilla teacher F_T and the advanced teacher F_A (with the RAA
    residual) of a trained run — with the plain normal training images (RD's data config at the run's size: no
    synthetic anomalies) and the run's test set: ``({"vanilla F_T": fn, "advanced F_A": fn}, train, test)``."""
    from rdlib.runs import RunSpec

    method = run.load_method(device)
    model = method.model.eval()
    _, test = build_datasets(run.spec)
    plain = RunSpec.from_profile("rd", "ci", run.spec.data_root, run.spec.category,
                                 {"image_size": run.spec.data_config().image_size}, data_format=run.spec.data_format)
    train, _ = build_datasets(plain)
    return {"vanilla F_T": model.teacher, "advanced F_A": model.encode}, train, test


def aand_separation_sentence(table, category: str) -> str:
    """The advanced minus the vanilla teacher's separation AUROC per level of a
    :func:`rdlib.projection.separation_table`, as a sentence."""
    auc = table["separation AUROC (%)"]
    gain = auc.xs("advanced F_A", level=1) - auc.xs("vanilla F_T", level=1)
    if (gain > 0).all():
        reading = "better at every level, as the paper's premise has it"
    elif (gain <= 0).all():
        reading = "no better at any level: the premise does not show here"
    else:
        reading = "better at some levels only"
    return (f"on **{category}**, the advanced teacher separates real-defect patches from normal ones by "
            + ", ".join(f"{v:+.1f} points at {k}" for k, v in gain.items())
            + f" of separation AUROC against the vanilla teacher — {reading} (one category, one run: no verdict)")


def rdre_window_throughput(options: dict, sizes, windows=(0, 4, 8, 16), device=None, repeats: int = 5) -> pd.DataFrame:
    """RD-RE's images per second at each ASSA window (0: no partition) and input size, at random weights, one image
    at a time (the paper's Table 7 throughput)."""
    from rdlib.cost import latency_ms
    from rdlib.methods import create_method

    device = torch.device(device or "cpu")
    rows = {}
    for window in windows:
        row = {}
        for size in sorted(set(sizes)):
            m = create_method("rdre", **{**options, "image_size": size, "window": window, "weights": "random"})
            m = m.to(device).eval()
            x = torch.rand(1, 3, size, size, device=device)
            row[f"images/s at {size}²"] = 1e3 / latency_ms(lambda: m.predict(x), repeats=repeats, device=device)
        rows[f"window {window}" + (" (no partition)" if window == 0 else "")] = row
    return pd.DataFrame(rows).T


def rd_shapes(teachers, weights: dict | None = None, image_size: int = 256) -> pd.DataFrame:
    """RD's shapes and sizes per teacher at ``image_size``: the teacher's maps f_E, the one-class embedding φ, the
    OCBE's and the decoder's parameters, and whether the student's maps match the teacher's (random weights unless
    ``weights`` names them per teacher)."""
    from rdlib.methods import get_model

    rows = {}
    x = torch.zeros(1, 3, image_size, image_size)
    for name in teachers:
        m = get_model("rd", teacher=name, weights=(weights or {}).get(name, "random")).train()
        with torch.no_grad():
            t, s = m(x)                                   # in train mode the model returns (teacher maps, student maps)
            phi = m.bottleneck(t)
        rows[name] = {"teacher maps f_E": " · ".join("×".join(map(str, f.shape[1:])) for f in t),
                      "embedding φ": "×".join(map(str, phi.shape[1:])),
                      "OCBE params (M)": sum(p.numel() for p in m.bottleneck.parameters()) / 1e6,
                      "decoder params (M)": sum(p.numel() for p in m.decoder.parameters()) / 1e6,
                      "student = teacher shapes": all(a.shape == b.shape for a, b in zip(t, s))}
    return pd.DataFrame(rows).T.rename_axis("teacher").round(2)


def rd_teacher_maps(run, device=None, n: int = 32) -> pd.DataFrame:
    """Per level of a trained RD run's teacher, on up to ``n`` training images: channels, the share of negative
    values and the standard deviation of the network's own maps (before ``teacher_activation``)."""
    train, _ = build_datasets(run.spec)
    model = run.load_method(device).model
    dev = next(model.parameters()).device
    x = torch.stack([train[i]["image"] for i in range(min(n, len(train)))]).to(dev)
    with torch.no_grad():
        raw = model.teacher.raw(x)
    table = pd.DataFrame({f"level {k + 1}": {"channels": f.shape[1], "negative values (%)": 100 * float((f < 0).float().mean()),
                                             "std": float(f.std())} for k, f in enumerate(raw)}).T.round(2)
    return table.astype({"channels": int})


def defect_areas(root, data_format: str | None = None) -> pd.DataFrame:
    """The area of every defective test image's mask (% of the image), one row per image: category, defect, area."""
    from rdlib.data import load_mask, read_dataset, verify

    rows = []
    for cat in sorted(verify(root, data_format).category.unique()):
        t = read_dataset(root, cat, data_format)
        rows += [{"category": cat, "defect": r.defect, "area %": 100 * load_mask(r.mask_path).mean()}
                 for r in t[t.label == 1].itertuples()]
    return pd.DataFrame(rows)


def anomaly_sources() -> pd.DataFrame:
    """Which photos each use of the data draws from: the embedded categories, their test defects' foreign patches
    and the fallback training textures (disjoint, so no test defect is ever a training texture)."""
    from rdlib.data.embedded import CATEGORIES, FOREIGN_SOURCES
    from rdlib.data.textures import SKIMAGE_PHOTOS, SKLEARN_PHOTOS

    return pd.DataFrame({"photos": [", ".join(sorted({s.source for s in CATEGORIES.values()})), ", ".join(FOREIGN_SOURCES),
                                    ", ".join(SKIMAGE_PHOTOS + SKLEARN_PHOTOS)]},
                        index=["embedded categories", "embedded test defects (foreign patches)", "fallback training textures"])


def synthesis_presets() -> None:
    """Show every synthesis preset (:data:`rdlib.synthesis.PRESETS`): its settings, one row each, and below the table
    where each comes from (a long sentence per preset reads as a list, not as a squeezed column on a phone)."""
    from IPython.display import Markdown, display

    from rdlib.synthesis import PRESETS

    display(pd.DataFrame({name: {"noise": p.noise, "P(anomalous)": p.p_anomalous,
                                 "augmenters": "yes" if p.augment else "no",
                                 "β (original kept)": f"U[{p.keep_range[0]}, {p.keep_range[1]})"
                                 if p.noise == "perlin" else "—", "foreground": p.foreground}
                          for name, p in PRESETS.items()}).T)
    display(Markdown("— in the β column: no texture is blended (simplex noise, or no synthesis). Where each preset "
                     "comes from:\n\n" + "\n".join(f"- **{name}**: {p.source}" for name, p in PRESETS.items())))


def reference_calibration(cfg, profile: str = "book", data_dir=None, runs_dir=None, device=None) -> pd.DataFrame:
    """The embedded benchmark's calibration, re-measured: the benchmark of ``cfg`` (an ``EmbeddedConfig``) generated
    at the image size of ``profile``'s kNN reference (``patch_knn``; its runs are shared by key with the chapters'),
    and per category the reference's I-AUROC, the 95 % half-width its test split resolves (Hanley–McNeil), whether
    it lies in :data:`rdlib.data.embedded.CALIBRATION_RANGE`, and the I-AUROC of each defect type against the normal
    test images."""
    from rdlib.data.embedded import CALIBRATION_RANGE
    from rdlib.experiments import per_defect_auroc, train_categories
    from dataclasses import replace

    from rdlib.data import generate_embedded
    from rdlib.metrics import auroc_half_width

    root = generate_embedded(data_dir, replace(cfg, size=calibration_size(profile)))
    knn = train_categories("patch_knn", profile, root, list(cfg.categories), runs_dir=runs_dir, device=device)
    if knn.failed:
        raise RuntimeError(f"the kNN reference failed on {sorted(knn.failed)}: {next(iter(knn.failed.values()))}")
    lo, hi = CALIBRATION_RANGE
    rows = {}
    for cat, run in knn.runs.items():
        pred = run.predictions()
        defects = np.asarray(pred.defects)
        i = run.metrics["i_auroc"]
        rows[cat] = {"I-AUROC": i, "± (95 %)": auroc_half_width(i, int((defects != "good").sum()),
                                                                 int((defects == "good").sum())),
                     "in range": lo <= i <= hi, **per_defect_auroc(pred)}
    return pd.DataFrame(rows).T.infer_objects()


def calibration_size(profile: str = "book") -> int:
    """The image size the benchmark is calibrated at under ``profile``: its kNN reference's (the chapters')."""
    from rdlib.methods import method_profile

    return int(method_profile("patch_knn", profile)["options"]["image_size"])


DATASET_NAMES = {"mvtec": "MVTec AD", "mpdd": "MPDD", "btad": "BTAD", "visa": "VisA"}


def dataset_label(root, fmt: str | None = None, embedded: bool = False) -> str:
    """A dataset as a reader names it: "the embedded benchmark", or a real one's benchmark (``fmt``, detected where
    None) and its folder's name (not the machine's path), e.g. "MVTec AD (folder mvtec_anomaly_detection)"."""
    from pathlib import Path

    from rdlib.data.readers import detect_format

    if embedded:
        return "the embedded benchmark"
    fmt = fmt or detect_format(root)
    return f"{DATASET_NAMES.get(fmt, fmt)} (folder {Path(root).name})"


def data_sentence(counts: pd.DataFrame, name: str) -> str:
    """What a dataset holds (``counts``: :func:`rdlib.data.verify`'s table), as one sentence naming it ``name``."""
    per_cat = counts.groupby("category")
    train = counts[counts.split == "train"].groupby("category")["images"].sum()
    test = counts[counts.split == "test"]
    good = test[test.defect == "good"].groupby("category")["images"].sum()
    bad = test[test.defect != "good"].groupby("category")["images"].sum()
    types = test[test.defect != "good"].groupby("category")["defect"].nunique()

    def span(s: pd.Series) -> str:
        s = s.reindex(list(per_cat.groups), fill_value=0).astype(int)
        return f"{s.min()}" if s.min() == s.max() else f"{s.min()}–{s.max()}"

    n_types = span(types)
    empty = len(counts.attrs.get("empty_masks", []))
    masks = (f"{empty} defective image{'s have' if empty != 1 else ' has'} an empty mask (left out of PRO)" if empty
             else "every defective image has a non-empty pixel mask")
    return (f"{name}: {per_cat.ngroups} categories ({', '.join(per_cat.groups)}), {span(train)} normal training "
            f"images each; the test split holds {span(good)} normal and {span(bad)} defective images of {n_types} "
            f"defect type{'' if n_types == '1' else 's'} per category; {masks}.")


def source_sentence(source) -> str:
    """Where the synthetic anomalies' textures come from (``source``: :func:`rdlib.data.find_texture_source`)."""
    kind = source.name.split(":")[0]
    where = {"dtd": "DTD, as in the papers", "debian": "Debian's texture packages (" +
             source.name.split(":", 1)[-1].replace("+", ", ") + "), because no DTD folder was given (DTD cannot be "
             "downloaded on the machines that build this book)",
             "skimage": "scikit-image's bundled photos (neither a DTD folder nor the Debian texture packages were found)",
             "procedural": "procedural noise textures (no image source was found)"}.get(kind, source.name)
    return (f"{len(source.images)} textures from {where}; none of them is among the photos the embedded benchmark's "
            "test defects are cut from.")


def calibration_sentence(table: pd.DataFrame) -> str:
    """What :func:`reference_calibration` found, as one sentence."""
    from rdlib.data.embedded import CALIBRATION_RANGE

    lo, hi = CALIBRATION_RANGE
    defects = table.drop(columns=["I-AUROC", "± (95 %)", "in range"]).astype(float)
    cat, defect = defects.stack().idxmin()
    return (f"The kNN reference scores {table['I-AUROC'].min():.1f}–{table['I-AUROC'].max():.1f} I-AUROC "
            f"({int(table['in range'].sum())} of {len(table)} categories inside {lo:g}–{hi:g}); its hardest defect "
            f"type is {defect} on {cat} at {defects.loc[cat, defect]:.1f} "
            f"({'above' if np.nanmin(defects.values) > 50 else 'at or below'} chance, 50); a category's test split resolves "
            f"its I-AUROC to ±{table['± (95 %)'].min():.1f}–{table['± (95 %)'].max():.1f} points.")
