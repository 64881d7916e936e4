# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # URD: reverse distillation with an expert (AAAI 2025)
#
# **[Open this chapter in Colab](https://colab.research.google.com/github/rdlib/rdlib/blob/main/notebooks/03_urd.ipynb)**
#
# Liu et al., *Unlocking the Potential of Reverse Distillation for Anomaly Detection* (URD), AAAI 2025 (code: hito2448/URD).
# In RD the teacher is frozen, so it describes an anomaly about as calmly as a normal pattern, and a student that
# generalises well rebuilds both. URD adds a third network: a frozen **expert** $E$ (the pretrained encoder RD's
# teacher was) guides a **trainable teacher** $T$ (same network, same initial weights) to stay with the expert on
# normal images and to move away from it exactly where a synthetic anomaly is. The **student** $S$ — RD's OCBE and
# decoder plus two **Guided Information Injection** (GII) modules that feed the teacher's features back into the
# decoder — learns to rebuild the teacher's features of the *normal* image, also from the anomalous one. At test
# time the expert is gone: $T$ and $S$ score an image exactly as RD does.
#
# Each equation below sits beside the `rdlib` code that computes it (`rdlib/methods/urd/`). The chapter trains URD
# on the embedded benchmark, sets it beside RD (the runs of the RD chapter, reused) and the training-free
# nearest-neighbour reference, reruns the paper's ablations (Tables 5–7) with seeds, and ends with the paper's
# numbers next to ours.

# %% tags=["parameters"]
PROFILE = "book"                  # ci | book | full | paper: the methods' profiles (rdlib/methods/urd/method.py)
DATA_ROOT = None                  # real dataset root, None for the embedded benchmark
DATA_FORMAT = None                # mvtec | mpdd | btad | visa | None (detect)
N_TRAIN = 80                      # embedded benchmark sizes (ignored with DATA_ROOT); as in the RD chapter
N_TEST_GOOD = 80
N_TEST_PER_DEFECT = 30
CATEGORIES = ["brick", "grass", "gravel", "coins", "coffee"]
OPTIONS = {}                      # URD options overriding the profile, e.g. {"gii": "sa"}
FIT = {}                          # loop settings overriding the profile, e.g. {"selection": "best_on_test"}
ABLATION_CATEGORIES = ["brick", "coffee"]
ABLATION_SEEDS = [111, 112, 113]  # every ablation variant runs with each seed (≥ 3 for a verdict)
ABLATION_IMAGE_SIZE = 64          # ablations at this size (None: the profile's), to fit the book's CPU budget
ABLATION_STEPS = 40               # ... and this many optimizer steps (None: the profile's)
RUNS_DIR = None                   # None: $RDLIB_RUNS or <repo>/runs
PROGRESS = True
WORKERS = 2                       # on a CPU, runs train as tasks of a local Dask cluster of 2 one-thread processes
REPO_URL = "https://github.com/rdlib/rdlib"   # the clone the Colab setup cell installs

# %% [markdown]
# Setup on Colab (the same cell in every chapter): clone rdlib, install it from the clone and work there.

# %%
import sys

if "google.colab" in sys.modules:  # pragma: no cover - only on Colab
    import subprocess

    subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, "/content/rdlib"], check=False)
    sys.path.insert(0, "/content/rdlib")
    from rdlib.colab import setup

    setup("/content/rdlib")

# %%
import logging
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from myst_nb import glue

from rdlib.anomaly_map import cosine_distance_map
from rdlib.cost import inference_cost
from rdlib.claims import AblationReport, judge
from rdlib.data import EmbeddedConfig, generate_embedded
from rdlib.experiments import (chapter_setup, long_table, results_table, run_grid, side_by_side, train_categories,
                                train_ms_per_step)
from rdlib.methods import get_model
from rdlib.models import create_teacher
from rdlib.methods.urd import level_masks
from rdlib.metrics import auroc
from rdlib.equivalence import equivalence_table
from rdlib.results import chance_sentence, compare, load_paper_numbers, not_reproduced, paper_row, readable
from rdlib.runs import build_datasets
from rdlib.viz import book_style, category_chart, show

logging.basicConfig(level=logging.WARNING)
logging.getLogger("rdlib.experiments").setLevel(logging.ERROR)   # a failed run is a row of the tables below instead
logging.getLogger("rdlib.data.textures").setLevel(logging.ERROR)  # the texture source is in section 10's table
book_style(precision=1)
torch.set_num_threads(max(1, os.cpu_count() or 1))
setup = chapter_setup("urd", PROFILE, OPTIONS, FIT, DATA_ROOT, N_TRAIN, N_TEST_GOOD, N_TEST_PER_DEFECT)
options, fit, root, data_name, device = setup.options, setup.fit, setup.root, setup.data_name, setup.device
IMAGE_SIZE, TEACHER = options["image_size"], options["teacher"]
print(f"data: {data_name}; profile {PROFILE!r}: {options}; loop {fit}; device: {device}")

# %% [markdown]
# ## 1. Three networks
#
# The expert is a frozen copy of the teacher's initial (ImageNet) network; the teacher trains; the student is RD's
# (section 1 of the RD chapter) with a GII before each of its two shallower decoder stages:
#
# ```{literalinclude} ../../rdlib/methods/urd/model.py
# :pyobject: URD.__init__
# ```
#
# ```{literalinclude} ../../rdlib/methods/urd/model.py
# :pyobject: URD.forward
# ```
#
# Parameters per part for each teacher at 256² (random weights are enough to count them). Only the teacher and the
# student run at test time.

# %%
rows = []
for name in ("wide_resnet50_2", "resnet18", "efficientnet_lite0"):
    m = get_model("urd", teacher=name, weights="random")
    parts = {"expert E": m.expert, "teacher T": m.teacher, "OCBE": m.bottleneck,
             "decoder (without GII)": [m.decoder.stage_a, m.decoder.stage_b, m.decoder.stage_c],
             "GII ×2": [m.decoder.gii_b, m.decoder.gii_c]}
    rows.append({"teacher": name, **{f"{k} (M)": sum(p.numel() for mod in (v if isinstance(v, list) else [v])
                                                   for p in mod.parameters()) / 1e6 for k, v in parts.items()}})
    del m
pd.DataFrame(rows).set_index("teacher").round(2)

# %% [markdown]
# ## 2. The teacher learns where anomalies are (Eq. 1–3)
#
# Each training item is a normal image $I_n$, a synthetic anomaly $I_a$ made from it (Perlin-noise mask $M$, a
# texture blended in: the `urd` preset of `rdlib.synthesis`) and $M$. With $D(a, b) = 1 - \cos(a, b)$ per pixel, at
# each level $i$ the teacher is pulled towards the expert on the normal image and pushed to differ from the
# expert's view of the *normal* image exactly on the mask:
#
# $$\mathcal{L}_{TE} = \sum_i \overline{D\big(T(I_n)_i, E(I_n)_i\big)} + \overline{\big|D\big(T(I_a)_i, E(I_n)_i\big) - M_i\big|}
# \;\big[+\, d\big(T(I_a)_i, E(I_a)_i\big)\big]$$
#
# The bracketed term (the flattened distance between the teacher's and the expert's view of the anomalous image)
# is in the released code only; `teacher_extra_term=True` keeps it (default, the code), `False` gives the paper's
# Eq. 3. $M_i$ is the mask resized level by level (bilinear, `align_corners=True`) and binarised at 0.5, as the code
# does:
#
# ```{literalinclude} ../../rdlib/methods/urd/loss.py
# :pyobject: teacher_loss
# ```
#
# ## 3. The student denoises (Eq. 4–6)
#
# After the teacher's step, the teacher is put in eval mode and run again without gradient; the student rebuilds
# the teacher's and the expert's features of the **normal** image from both images ($d$: RD's flattened cosine
# distance):
#
# $$\mathcal{L}_S = \sum_i \sum_{x \in \{I_n, I_a\}} d\big(S(T(x))_i, T(I_n)_i\big) + d\big(S(T(x))_i, E(I_n)_i\big)$$
#
# The paper's Eq. 5 writes the anomalous image's target with a superscript $a$; the code (and the paper's text)
# use the normal image's features, as here.
#
# ```{literalinclude} ../../rdlib/methods/urd/loss.py
# :pyobject: student_loss
# ```
#
# ## 4. Guided Information Injection
#
# Before decoder stage $B$ (and likewise $C$), the teacher's features of two neighbouring levels are fused and
# injected into the student's: with similarity attention (**SA**, the paper) the fused teacher feature is mixed in
# where the student already agrees with the teacher ($\mathrm{Sim} = \cos(F_S, F_T)$, no gradient), the student's
# own feature where it does not; with a plain skip connection (**SC**) the fused feature is concatenated as it is.
#
# ```{literalinclude} ../../rdlib/methods/urd/gii.py
# :pyobject: GII.forward
# ```
#
# **Paper vs code.** The released `train.py` calls the student in the mode that concatenates (SC) — the "GII + SC"
# row of the paper's Table 7, not its full model (SA). Following this book's rule (the code's behaviour is the
# default, the paper's an option), `gii="sc"` is the default and `gii="sa"` the paper's model; section 8 runs both.

# %% [markdown]
# ## 5. Training
#
# Per batch, one teacher step (Adam, lr 1e-4, teacher in train mode) and then one student step (Adam, lr 0.005),
# β = (0.5, 0.999) for both; the budget is counted in optimizer steps (the code: 5,000; 10,000 for cable and
# transistor, which the `paper` profile sets per category) and the last checkpoint is kept. URD's own practice —
# reporting the test-set epoch with the best P-AUROC + PRO — is available, labelled, as
# `FIT={"selection": "best_on_test", "selection_metric": "p_auroc+pro_rd", "eval_every": ...}`.
#
# ```{literalinclude} ../../rdlib/methods/urd/method.py
# :pyobject: URDMethod.training_step
# ```
#
# The teacher cannot be cached as RD's can (it changes every step) and the expert runs on both images, so a URD
# step costs several cached RD steps on this CPU (the cost table in section 9); the `book` profile therefore
# trains URD for fewer steps than RD and compares the two at the same step count. RD's runs are those of the RD
# chapter, reused by key.

# %%
trained = train_categories("urd", PROFILE, root, CATEGORIES, OPTIONS, FIT, DATA_FORMAT, RUNS_DIR, device, PROGRESS, WORKERS)
rd = train_categories("rd", PROFILE, root, CATEGORIES, {}, {}, DATA_FORMAT, RUNS_DIR, device, workers=WORKERS)
knn = train_categories("patch_knn", PROFILE, root, CATEGORIES, {"teacher": TEACHER}, {}, DATA_FORMAT, RUNS_DIR, device, workers=WORKERS)
runs = trained.runs
print(f"URD runs: {len(runs)}, failed: {sorted(trained.failed) or 'none'}; RD runs: {len(rd.runs)}; kNN runs: {len(knn.runs)}")

# %% [markdown]
# ## 6. Results per category
#
# All metrics in %, as in the RD chapter (PRO (RD per-image) is the PRO the URD code computes).

# %%
results = results_table(trained)
display(readable(results))
preds = {cat: run.predictions() for cat, run in runs.items()}
display(Markdown(chance_sentence(preds)))
rd_table, knn_table = results_table(rd), results_table(knn)
side = side_by_side({"RD": rd_table, "URD": results, "kNN": knn_table})
display(side)
fig, ax = plt.subplots(figsize=(6.8, 2.8))
category_chart(ax, side, ["RD I-AUROC", "URD I-AUROC", "kNN I-AUROC"])
ax.set_title("I-AUROC per category: RD, URD and the training-free reference")
fig.tight_layout()
plt.show()
urd_steps = {cat: run.history[-1]["step"] for cat, run in runs.items() if run.history}
rd_rows = []                                            # RD at URD's step count, from RD's learning curve when it has one
for cat, run in rd.runs.items():
    at = [h for h in run.history if h.get("step") == urd_steps.get(cat) and "test_i_auroc" in h]
    final = run.history[-1]["step"] if run.history else None
    if at and final != urd_steps.get(cat):
        rd_rows.append({"variant": "RD", "category": cat, "seed": 0, "i_auroc": at[0]["test_i_auroc"],
                        "p_auroc": at[0]["test_p_auroc"], **run.design_row(), "steps": at[0]["step"]})
    elif final == urd_steps.get(cat):
        rd_rows.append({"variant": "RD", "category": cat, "seed": 0, **run.metrics, **run.design_row()})
same_steps = pd.concat([long_table(trained, "URD"), pd.DataFrame(rd_rows)], ignore_index=True)
if len(rd_rows) > 1:
    steps_text = lambda steps: " / ".join(str(v) for v in sorted(set(steps)))          # noqa: E731
    display(Markdown(f"URD trains {steps_text(urd_steps.values())} steps, RD "
                     f"{steps_text(r.history[-1]['step'] for r in rd.runs.values() if r.history)}; "
                     "the verdicts compare them at the same step count (RD's test metrics at that step, from its learning "
                     "curve):"))
    for metric, label in (("i_auroc", "I-AUROC"), ("p_auroc", "P-AUROC")):
        display(Markdown(judge(same_steps, "URD", "RD", metric, f"URD beats RD on {label} at the same number of "
                               "optimizer steps", paper_claim=True).sentence))

# %% [markdown]
# ## 7. What the trained teacher learned
#
# The premise of URD: after training, the teacher departs from the expert on anomalous regions and not on normal
# ones. Below, for every test image of one category, the per-patch distance $D(T(x), E(x))$ at each level, split
# into patches inside a real defect (the embedded benchmark's defects, not the synthetic training anomalies) and
# normal patches. Before training $T = E$ and every distance is 0. The AUROC of this distance as a patch-level
# detector is a number that does not depend on a picture.

# %% tags=["hide-input"]
cat0 = next(iter(runs), None)
if cat0 is not None:
    method = runs[cat0].load_method(device)
    _, test = build_datasets(runs[cat0].spec)
    expert = create_teacher(TEACHER, options.get("weights", "imagenet"),                  # E: the untrained teacher
                            activation=options.get("teacher_activation", "none")).to(device)
    dist = {k: {"normal": [], "defect": []} for k in range(3)}
    for i in range(len(test)):
        item = test[i]
        x = item["image"][None].to(device)
        with torch.no_grad():
            t, e = method.model.teacher(x), expert(x)
        masks = level_masks(item["mask"][None].to(device), [f.shape[-2:] for f in t])
        for k, (a, b, m) in enumerate(zip(t, e, masks)):
            d = cosine_distance_map(a, b).flatten().cpu().numpy()          # D(T(x), E(x)) per patch
            m = m.flatten().cpu().numpy() > 0.5
            dist[k]["defect"].append(d[m])
            dist[k]["normal"].append(d[~m])
    fig, axes = plt.subplots(1, 3, figsize=(6.8, 2.4))
    rows = {}
    for k, ax in enumerate(axes):
        normal, defect = np.concatenate(dist[k]["normal"]), np.concatenate(dist[k]["defect"])
        bins = np.linspace(0, max(normal.max(), defect.max() if defect.size else 0) + 1e-6, 40)
        ax.hist(normal, bins, density=True, alpha=0.6, label="normal patches")
        if defect.size:
            ax.hist(defect, bins, density=True, alpha=0.6, label="defect patches")
        ax.set_title(f"level {k + 1}")
        ax.set_xlabel("D(T(x), E(x))")
        rows[f"level {k + 1}"] = {"normal patches": normal.size, "defect patches": defect.size,
                                  "mean D normal": normal.mean(), "mean D defect": defect.mean() if defect.size else np.nan,
                                  "patch AUROC (%)": 100 * auroc(np.r_[normal, defect],
                                                                 np.r_[np.zeros(normal.size), np.ones(defect.size)])
                                  if defect.size and normal.size else np.nan}
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{cat0}: teacher vs expert after training, per test patch", fontsize=10)
    fig.tight_layout()
    plt.show()
    display(pd.DataFrame(rows).T.round(3))

# %% [markdown]
# **Per-level teacher–student maps** (the paper's Fig. 4a): $1 - \cos(T(x)_k, S(T(x))_k)$ at each level for one
# defective test image, RD's (frozen teacher) above URD's; each row on its own colour scale, the defect as a green
# contour.

# %% tags=["hide-input"]
if cat0 is not None and cat0 in rd.runs:
    rd_method = rd.runs[cat0].load_method(device)
    i = int(np.argmax(preds[cat0].masks.sum((1, 2))))         # the defective test image with the largest defect
    x = test[i]["image"][None].to(device)
    fig, axes = plt.subplots(2, 4, figsize=(6.8, 3.6))
    for r, (label, model) in enumerate((("RD", rd_method.model), ("URD", method.model))):
        with torch.no_grad():
            t = model.teacher(x)
            maps = [cosine_distance_map(a, b)[0, 0].cpu().numpy() for a, b in zip(t, model.student(t))]
        show(axes[r, 0], test[i]["image"], None, test[i]["mask"][0].numpy() > 0.5, title=f"{label}: {test.table.defect.iloc[i]}")
        vmax = max(float(m.max()) for m in maps)
        for k, m in enumerate(maps):
            axes[r, k + 1].imshow(m, cmap="jet", vmin=0, vmax=vmax)
            axes[r, k + 1].set_title(f"{label} level {k + 1}", fontsize=9)
            axes[r, k + 1].axis("off")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## 8. Ablations on the embedded benchmark (Tables 5–7)
#
# Six variants, each trained on {glue:text}`urd_abl_cats` with {glue:text}`urd_abl_seeds` seeds for
# {glue:text}`urd_abl_steps` steps at {glue:text}`urd_abl_size` (smaller and shorter than the main runs: a URD step
# costs several RD steps on this CPU; the `full` profile runs them at the main size on a GPU). *T–S* is RD inside
# URD's code (frozen teacher, no synthetic images); *+ denoising* adds the anomalous image to the student's inputs
# with the normal image's features as targets; *E–T–S* adds the expert and trains the teacher. Each cell: mean over
# categories and seeds ± the half-width of its 95 % interval (`rdlib.stats`: a t-interval over categories, or over
# the seeds of one category); each verdict: `rdlib.claims.judge` on the paired differences, with the design it
# rests on.

# %%
abl_size = ABLATION_IMAGE_SIZE or IMAGE_SIZE
abl_steps = ABLATION_STEPS or options["steps"]
abl_root = root if (DATA_ROOT is not None or abl_size == IMAGE_SIZE) else generate_embedded(cfg=EmbeddedConfig(
    size=abl_size, n_train=N_TRAIN, n_test_good=N_TEST_GOOD, n_test_per_defect=N_TEST_PER_DEFECT))
glue("urd_abl_cats", ", ".join(ABLATION_CATEGORIES) or "no categories (skipped in this profile)", display=False)
glue("urd_abl_seeds", str(len(ABLATION_SEEDS)), display=False)
glue("urd_abl_steps", str(abl_steps), display=False)
glue("urd_abl_size", f"{abl_size}²", display=False)
VARIANTS = {
    "T–S (= RD)": dict(expert=False, denoising=False, gii="none"),
    "T–S + denoising": dict(expert=False, denoising=True, gii="none"),
    "T–S + GII (SA)": dict(expert=False, denoising=False, gii="sa"),
    "E–T–S (RD-E)": dict(expert=True, denoising=True, gii="none"),
    "E–T–S + GII (SC, code)": dict(expert=True, denoising=True, gii="sc"),
    "E–T–S + GII (SA, paper)": dict(expert=True, denoising=True, gii="sa"),
}
METRICS = ["i_auroc", "p_auroc", "p_ap", "pro_rd"]
paper = load_paper_numbers()
grid = run_grid("urd", PROFILE, abl_root, ABLATION_CATEGORIES,
                {k: {"options": {**OPTIONS, **v, "image_size": abl_size, "steps": abl_steps}, "fit": FIT}
                 for k, v in VARIANTS.items()}, seeds=ABLATION_SEEDS, data_format=DATA_FORMAT, runs_dir=RUNS_DIR,
                device=device, progress=PROGRESS, workers=WORKERS) if ABLATION_CATEGORIES else pd.DataFrame()

ablation = AblationReport("urd", grid, METRICS, paper)   # tables and verdicts; saved for the comparison chapter


# %% [markdown]
# **Table 5 (network composition).** The expert and GII, each on and off (the paper's GII here is SA; its numbers
# are localisation metrics on MVTec AD).

# %%
ablation.table(["T–S (= RD)", "E–T–S (RD-E)", "T–S + GII (SA)", "E–T–S + GII (SA, paper)"], "urd_table5",
               ["urd_base", "urd_expert", "urd_gii", "urd_expert_gii"], ("p_auroc", "p_ap", "pro"), dataset="mvtec_ad")
if not grid.empty:
    ablation.judge("E–T–S (RD-E)", "T–S (= RD)", "The expert improves localisation, P-AP (Table 5)", "p_ap")
    ablation.judge("E–T–S (RD-E)", "T–S (= RD)", "The expert improves localisation, PRO (Table 5)", "pro_rd")
    ablation.judge("E–T–S + GII (SA, paper)", "E–T–S (RD-E)", "GII improves the expert model, P-AP (Table 5)", "p_ap")

# %% [markdown]
# **Table 6 (what the expert adds).** Denoising alone (the student sees the anomalous image, the teacher stays
# frozen) against the expert-guided teacher.

# %%
ablation.table(["T–S (= RD)", "T–S + denoising", "E–T–S (RD-E)"], "urd_table6", ["urd_ts", "urd_ts_den", "urd_ets_den_sen"],
               ("i_auroc", "p_auroc", "p_ap", "pro"))
if not grid.empty:
    ablation.judge("T–S + denoising", "T–S (= RD)", "Denoising alone improves localisation, P-AUROC (Table 6)", "p_auroc")
    ablation.judge("E–T–S (RD-E)", "T–S + denoising", "The expert improves on denoising alone, P-AP (Table 6)", "p_ap")

# %% [markdown]
# **Table 7 (GII).** Without GII, with the plain skip connection (the released code) and with similarity
# attention (the paper).

# %%
ablation.table(["E–T–S (RD-E)", "E–T–S + GII (SC, code)", "E–T–S + GII (SA, paper)"], "urd_table7",
               ["urd_wo_gii", "urd_gii_sc", "urd_gii_sa"], ("i_auroc", "p_auroc", "p_ap", "pro"))
if not grid.empty:
    ablation.judge("E–T–S + GII (SC, code)", "E–T–S (RD-E)", "GII with a skip connection beats no GII, I-AUROC (Table 7)", "i_auroc")
    ablation.judge("E–T–S + GII (SA, paper)", "E–T–S + GII (SC, code)", "Similarity attention beats the skip connection, I-AUROC (Table 7)",
                   "i_auroc")
display(Markdown(ablation.markdown()))
saved = ablation.log.save(PROFILE, RUNS_DIR)                 # read by the comparison chapter

# %% [markdown]
# **Anomaly maps** of the same test images from three ablation models of the first seed (the paper's Figs. 1 and
# 6): RD (T–S), RD with the expert (E–T–S) and URD (E–T–S + GII, the default mode), the ground truth as a green
# contour; one colour scale per row.

# %% tags=["hide-input"]
if not grid.empty and ABLATION_CATEGORIES:
    from rdlib.runs import RunSpec, get_or_train

    cat = ABLATION_CATEGORIES[0]
    shown = {"RD (T–S)": "T–S (= RD)", "RD + expert": "E–T–S (RD-E)", f"URD (GII {options.get('gii', 'sc').upper()})":
             "E–T–S + GII (SC, code)" if options.get("gii", "sc") == "sc" else "E–T–S + GII (SA, paper)"}
    models = {}
    for label, variant in shown.items():
        spec = RunSpec.from_profile("urd", PROFILE, abl_root, cat, {**OPTIONS, **VARIANTS[variant], "image_size": abl_size,
                                                                    "steps": abl_steps}, {**FIT, "seed": ABLATION_SEEDS[0]},
                                    DATA_FORMAT)
        models[label] = get_or_train(spec, RUNS_DIR, device=device, progress=False)
    p0 = next(iter(models.values())).predictions()
    bad = np.flatnonzero(p0.labels == 1)
    picks = bad[np.linspace(0, len(bad) - 1, min(3, len(bad))).astype(int)]
    _, test_abl = build_datasets(next(iter(models.values())).spec)
    fig, axes = plt.subplots(len(picks), len(models), figsize=(6.8, 2.3 * len(picks)), squeeze=False)
    for r, i in enumerate(picks):
        preds_i = {label: run.predictions() for label, run in models.items()}
        vmin = min(float(p.maps[i].min()) for p in preds_i.values())
        vmax = max(float(p.maps[i].max()) for p in preds_i.values())
        for c, (label, p) in enumerate(preds_i.items()):
            show(axes[r, c], test_abl[int(i)]["image"], p.maps[i].astype(np.float32), p.masks[i], vmin, vmax,
                 title=f"{label}: {p.defects[i]}", colorbar=c == len(models) - 1)
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## 9. Cost beside RD
#
# At inference URD runs the teacher and the student (the expert only trains): RD's networks plus the two GII
# modules. Parameters that run, FLOPs (`torch.utils.flop_counter`, multiply-add = 2) and the median CPU latency of
# one image at the main size, measured now by `rdlib.cost.inference_cost`; training time per step from the main
# runs (measured when they were trained, under that build's load).

# %% tags=["nbval-ignore-output"]
cost = {}
for label, cr in (("RD", rd), ("URD", trained)):
    if cr.runs:
        run = next(iter(cr.runs.values()))
        cost[label] = {**inference_cost(run.load_method(device), IMAGE_SIZE, device=device, repeats=5),
                       "train ms/step": train_ms_per_step(cr)}
pd.DataFrame(cost).T

# %% [markdown]
# ## 10. Paper vs ours
#
# The paper's MVTec AD means (Tables 1–2, URD's "Ours" column) next to our mean over the embedded categories. **Not the same
# experiment**: Δ only says how far apart the two settings are.

# %%
ours = results.loc["mean"].to_dict()
r1 = paper_row(paper, "urd_table1", "urd", dataset="mvtec_ad")
r2 = paper_row(paper, "urd_table2", "urd", dataset="mvtec_ad")
display(compare({"i_auroc": r1.i_auroc, "i_ap": r1.i_ap, "p_auroc": r2.p_auroc, "p_ap": r2.p_ap, "pro": r2.pro}, ours, pro_variant=r2.pro_variant))
pd.DataFrame([
    ("data", "MVTec AD, 15 categories", data_name + f", {len(runs)} categories"),
    ("teacher / expert", "WideResNet50-2, torchvision IMAGENET1K_V1",
     f"{TEACHER} ({options.get('weights', 'imagenet')}), teacher_activation={options.get('teacher_activation', 'none')!r}"),
    ("input", "256×256", f"{IMAGE_SIZE}×{IMAGE_SIZE}"),
    ("schedule", "code: 5,000 steps (10,000 for cable, transistor), batch 16; paper: at most 10k, early stopping",
     f"{options['steps']} steps, batch {fit['batch_size']}"),
    ("GII", "similarity attention in the paper; the released train.py runs SC", options.get("gii", "sc")),
    ("checkpoint", "best test-set epoch by P-AUROC + PRO", fit.get("selection", "last")),
    ("synthesis", "DTD textures, Perlin masks; code: GrabCut/Otsu foregrounds",
     "the `urd` preset; textures: " + ", ".join(sorted({str(r.info.get("texture_source")) for r in runs.values()}))
     + "; the embedded categories' own foreground rule"),
    ("PRO", "per-image RD-code PRO", "the same (column PRO (RD per-image))"),
], columns=["", "paper", "ours"]).set_index("")

# %% [markdown]
# ## 11. Equal to the official code
#
# Whether rdlib computes what the official URD code computes is checked outside the book's build by the harness
# in `benchmarks/official/` (how it works: the RD chapter, section 9), here with the same synthesised batch on both
# sides. The file it wrote, read here, names both commits and the machine:

# %% tags=["hide-input"]
sentence, table = equivalence_table("urd")
display(Markdown(sentence))
table

# %% [markdown]
# ## 12. What this chapter does not reproduce
#
# Every table and result figure of the paper is either reproduced above, in a small form on the embedded
# benchmark at the book's CPU scale, or listed here with the reason (`rdlib.results.coverage` lists both):

# %% tags=["hide-input"]
not_reproduced("urd")

# %% [markdown]
# ## Environment

# %% tags=["nbval-ignore-output"]
from rdlib.utils import environment_footer

display(Markdown(environment_footer()))
