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
# Liu et al., [*Unlocking the Potential of Reverse Distillation for Anomaly Detection*](https://arxiv.org/abs/2412.07579)
# (URD), AAAI 2025 (official code: [hito2448/URD](https://github.com/hito2448/URD)).
# In RD the teacher is frozen, so it describes an anomaly about as calmly as a normal pattern, and a student that
# generalises well rebuilds both. URD adds a third network: a frozen **expert** $E$ (the pretrained encoder RD's
# teacher was) guides a **trainable teacher** $T$ (same network, same initial weights) to stay with the expert on
# normal images and to move away from it exactly where a synthetic anomaly is. The **student** $S$ — RD's OCBE and
# decoder plus two **Guided Information Injection** (GII) modules that feed the teacher's features back into the
# decoder — learns to rebuild the teacher's features of the *normal* image, also from the anomalous one. At test
# time the expert is gone: $T$ and $S$ score an image exactly as RD does.
#
# Each equation below sits beside the `rdlib` code that computes it (`rdlib/methods/urd/`). The chapter trains URD
# on the embedded benchmark, sets it beside RD (the runs of [the RD chapter](01_rd.ipynb), reused) and the training-free
# nearest-neighbour reference, reruns the paper's ablations (Tables 5–7) with seeds, and ends with the paper's
# numbers next to ours.
#
# ## What this chapter finds
#
# Computed from this page's own runs when it was built; the sections below hold the evidence. All of it is at the
# book's CPU scale — the embedded benchmark, an EfficientNet-Lite0 teacher and a few hundred optimizer steps where
# the paper trains thousands on MVTec AD with a WideResNet50-2 — so it describes URD at this budget, not the paper's
# result.
#
# - **Detection** (section 6): {glue:md}`urd_find_detection`.
# - **Trained to its plateau?** (section 5): {glue:md}`urd_find_plateau`
# - **URD against RD, each at its plateau** (section 6): {glue:md}`urd_find_vs_rd`
# - **The premise: a teacher that departs from the expert on defects** (section 7): {glue:md}`urd_find_teacher`.
# - **The paper's ablations** (section 8, Tables 5–7): {glue:md}`urd_find_ablations`.
# - **Equal to the official code** (section 11): {glue:md}`urd_find_equivalence`

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
CLAIM_CATEGORIES = ["brick", "gravel", "coffee"]   # URD against RD: these categories × seeds (≥ 3 × 3 for a verdict)
CLAIM_SEEDS = [111, 112, 113]     # (other seeds are trained only where URD's plateau is reached)
CURVE_EVAL_EVERY = 20             # runs are evaluated every this many optimizer steps (0: no curves, no verdicts)
RD_CURVE_EVAL_EVERY = 5           # RD's runs as its chapter evaluates them, in epochs (reused by key)
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
from IPython.display import Markdown, display

from rdlib import analysis, viz
from rdlib.chapter import start
from rdlib.cost import parameter_table
from rdlib.results import not_reproduced
from rdlib.runs import build_datasets

ch = start("urd", PROFILE, CATEGORIES, options=OPTIONS, fit=FIT, data_root=DATA_ROOT, data_format=DATA_FORMAT,
           n_train=N_TRAIN, n_test_good=N_TEST_GOOD, n_test_per_defect=N_TEST_PER_DEFECT, runs_dir=RUNS_DIR,
           progress=PROGRESS, workers=WORKERS)

# %% [markdown]
# ## 1. Three networks
#
# The expert is a frozen copy of the teacher's initial (ImageNet) network; the teacher trains; the student is RD's
# (section 1 of [the RD chapter](01_rd.ipynb)) with a GII before each of its two shallower decoder stages:
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
parameter_table("urd", {"expert E": "expert", "teacher T": "teacher", "OCBE": "bottleneck",
                        "decoder (without GII)": ["decoder.stage_a", "decoder.stage_b", "decoder.stage_c"],
                        "GII ×2": ["decoder.gii_b", "decoder.gii_c"]})

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
# step costs several cached RD steps on this CPU (the cost table in section 9); the `book` profile trains it for 200
# steps (at 50, grass was still gaining 12 points after the last of them); the learning curves below say whether
# 200 is enough. RD's runs are those of
# [the RD chapter](01_rd.ipynb), reused by key.

# %%
trained = ch.train(fit={"eval_every": CURVE_EVAL_EVERY})    # a failed category is a row of the tables below
rd, knn = ch.train("rd", fit={"eval_every": RD_CURVE_EVAL_EVERY}), ch.train("patch_knn", {"teacher": ch.teacher})
runs = trained.runs

# %% [markdown]
# **Learning curves.** Every main run is evaluated on the test set every {glue:text}`urd_curve_every` optimizer
# steps while it trains, and `rdlib.plateau` reads from the curves whether the schedule reaches its plateau, with the
# rule of [the RD chapter](01_rd.ipynb) (section 4); RD's plateau is read the same way from its chapter's runs. A
# claim on runs that are not converged is not judged.

# %% tags=["hide-input"]
ch.glue(urd_curve_every=CURVE_EVAL_EVERY)
urd_plateau, rd_plateau = ch.plateau(trained, "URD"), ch.plateau(rd, "RD", finding=None, show=False)

# %% [markdown]
# ## 6. Results per category
#
# All metrics in %, as in [the RD chapter](01_rd.ipynb) (PRO (RD per-image) is the PRO the URD code computes). The first table
# is URD alone, one row per category; the second sets its I-AUROC and P-AUROC beside RD's and beside the
# training-free nearest-neighbour reference's, which shows how hard each category is before any training.

# %%
results = ch.results("URD", trained, {"RD": rd, "kNN": knn})

# %% [markdown]
# A URD step costs several RD steps, so the two are trained for different numbers of steps; a verdict on "URD beats
# RD" compares each **at its own plateau** (section 5 for URD, [the RD chapter](01_rd.ipynb) for RD), on the
# categories and seeds named in the sentence, which also gives both step counts. Where either method is not shown
# converged, or the design is smaller than the book's minimum, the sentence says it was not judged.

# %%
ch.versus(ch.replicate("URD", CLAIM_SEEDS, CLAIM_CATEGORIES, main=trained),
          ch.replicate("RD", CLAIM_SEEDS, CLAIM_CATEGORIES, "rd", main=rd), "URD", "RD", "(each trained to its plateau)")

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
    apart = viz.separation_histograms(analysis.urd_expert_distances(runs[cat0], ch.device), "D(T(x), E(x))",
                                      f"{cat0}: teacher vs expert after training, per test patch")
    display(apart)
    ch.finding("teacher", f"on {cat0}, the teacher–expert distance detects real-defect patches with a patch AUROC of "
               + ", ".join(f"{v:.1f} % at {k}" for k, v in apart["patch AUROC (%)"].items()) + " (50 %: no preference)")

# %% [markdown]
# **Per-level teacher–student maps** (the paper's Fig. 4a): $1 - \cos(T(x)_k, S(T(x))_k)$ at each level for one
# defective test image, RD's (frozen teacher) above URD's; each row on its own colour scale, the defect as a green
# contour and a colour bar per row. A level whose map lights up on the defect and stays dark elsewhere is a level
# that localises it; URD's claim is that its trained teacher makes the deeper levels do so more clearly than RD's.

# %% tags=["hide-input"]
if cat0 is not None and cat0 in rd.runs:
    _, test = build_datasets(runs[cat0].spec)
    i = int(runs[cat0].predictions().masks.sum((1, 2)).argmax())         # the defective test image with the largest defect
    viz.level_maps({"RD": rd.runs[cat0].load_method(ch.device).model, "URD": runs[cat0].load_method(ch.device).model},
                   test[i]["image"], test[i]["mask"][0].numpy(), test.table.defect.iloc[i])

# %% [markdown]
# ## 8. Ablations on the embedded benchmark (Tables 5–7)
#
# Six variants, each trained on {glue:text}`urd_abl_cats` with {glue:text}`urd_abl_seeds` seeds for
# {glue:text}`urd_abl_budget` steps at {glue:text}`urd_abl_size`. In the `book` profile they are not run: at the
# design a verdict needs ({glue:text}`claim_design`, each variant trained to its plateau at {glue:text}`chapter_size`) six variants at
# several seconds a URD step exceed the book's CPU budget; the `full` profile runs them on a GPU. *T–S* is RD inside
# URD's code (frozen teacher, no synthetic images); *+ denoising* adds the anomalous image to the student's inputs
# with the normal image's features as targets; *E–T–S* adds the expert and trains the teacher. Each cell: mean over
# categories and seeds ± the half-width of its 95 % interval (`rdlib.stats`: a t-interval over categories, or over
# the seeds of one category); each verdict: `rdlib.claims.judge` on the paired differences, with the design it
# rests on.

# %%
VARIANTS = {
    "T–S (= RD)": dict(expert=False, denoising=False, gii="none"),
    "T–S + denoising": dict(expert=False, denoising=True, gii="none"),
    "T–S + GII (SA)": dict(expert=False, denoising=False, gii="sa"),
    "E–T–S (RD-E)": dict(expert=True, denoising=True, gii="none"),
    "E–T–S + GII (SC, code)": dict(expert=True, denoising=True, gii="sc"),
    "E–T–S + GII (SA, paper)": dict(expert=True, denoising=True, gii="sa"),
}
ablation = ch.ablation(VARIANTS, ABLATION_CATEGORIES, ABLATION_SEEDS, ["i_auroc", "p_auroc", "p_ap", "pro_rd"],
                       image_size=ABLATION_IMAGE_SIZE, budget={"steps": ABLATION_STEPS}, glue_prefix="urd_abl",
                       curves_every=CURVE_EVAL_EVERY)

# %% [markdown]
# **Table 5 (network composition).** The expert and GII, each on and off (the paper's GII here is SA; its numbers
# are localisation metrics on MVTec AD).

# %%
ablation.table(["T–S (= RD)", "E–T–S (RD-E)", "T–S + GII (SA)", "E–T–S + GII (SA, paper)"], "urd_table5",
               ["urd_base", "urd_expert", "urd_gii", "urd_expert_gii"], ("p_auroc", "p_ap", "pro"), dataset="mvtec_ad")
ablation.judge("E–T–S (RD-E)", "T–S (= RD)", "The expert improves localisation, P-AP (Table 5)", "p_ap")
ablation.judge("E–T–S (RD-E)", "T–S (= RD)", "The expert improves localisation, PRO (Table 5)", "pro_rd")
ablation.judge("E–T–S + GII (SA, paper)", "E–T–S (RD-E)", "GII improves the expert model, P-AP (Table 5)", "p_ap")

# %% [markdown]
# **Table 6 (what the expert adds).** Denoising alone (the student sees the anomalous image, the teacher stays
# frozen) against the expert-guided teacher.

# %%
ablation.table(["T–S (= RD)", "T–S + denoising", "E–T–S (RD-E)"], "urd_table6", ["urd_ts", "urd_ts_den", "urd_ets_den_sen"],
               ("i_auroc", "p_auroc", "p_ap", "pro"))
ablation.judge("T–S + denoising", "T–S (= RD)", "Denoising alone improves localisation, P-AUROC (Table 6)", "p_auroc")
ablation.judge("E–T–S (RD-E)", "T–S + denoising", "The expert improves on denoising alone, P-AP (Table 6)", "p_ap")

# %% [markdown]
# **Table 7 (GII).** Without GII, with the plain skip connection (the released code) and with similarity
# attention (the paper).

# %%
ablation.table(["E–T–S (RD-E)", "E–T–S + GII (SC, code)", "E–T–S + GII (SA, paper)"], "urd_table7",
               ["urd_wo_gii", "urd_gii_sc", "urd_gii_sa"], ("i_auroc", "p_auroc", "p_ap", "pro"))
ablation.judge("E–T–S + GII (SC, code)", "E–T–S (RD-E)", "GII with a skip connection beats no GII, I-AUROC (Table 7)", "i_auroc")
ablation.judge("E–T–S + GII (SA, paper)", "E–T–S + GII (SC, code)", "Similarity attention beats the skip connection, I-AUROC (Table 7)",
           "i_auroc")
saved = ablation.log.save(PROFILE, RUNS_DIR)                 # every verdict of this section, for the comparison chapter
ch.finding("ablations", ablation.log.summary())

# %% [markdown]
# **Anomaly maps** of the same test images from four ablation models of the first seed (the paper's Figs. 1 and
# 6): RD (T–S), RD with the expert (E–T–S) and URD with either GII (the code's skip connection, the paper's
# similarity attention), the ground truth as a green contour; one colour scale per row.

# %% tags=["hide-input"]
ablation.figure("The ablation models' maps", lambda: viz.compare_maps(
    {v: (ablation.run(v, ABLATION_CATEGORIES[0], ABLATION_SEEDS[0]), None) for v in
     ["T–S (= RD)", "E–T–S (RD-E)", "E–T–S + GII (SC, code)", "E–T–S + GII (SA, paper)"]}))

# %% [markdown]
# What the paper's figures show, and what to look for in these maps where a profile draws them: with the expert,
# the map should concentrate on the defect and stay quieter on the normal texture around it, because the teacher's
# features of the defect no longer match what the student rebuilds from normal images. A map brighter on the defect
# than elsewhere in one variant and not in another is the qualitative counterpart of the P-AUROC column above.

# %% [markdown]
# ## 9. Cost beside RD
#
# At inference URD runs the teacher and the student (the expert only trains): RD's networks plus the two GII
# modules. Parameters that run, FLOPs (`torch.utils.flop_counter`, multiply-add = 2) and the median CPU latency of
# one image at the main size, measured now by `rdlib.cost.inference_cost`; training time per step from the main
# runs (measured when they were trained, under that build's load, without the learning curve's evaluations or
# checkpoint writes).

# %% tags=["nbval-ignore-output"]
ch.cost({"RD": rd, "URD": trained})

# %% [markdown]
# ## 10. Paper vs ours
#
# The paper's MVTec AD means (Tables 1–2, URD's "Ours" column) next to our mean over the embedded categories. **Not the same
# experiment**: Δ only says how far apart the two settings are.

# %%
display(ch.paper_vs_ours(results))
ch.protocol(trained)

# %% [markdown]
# ## 11. Equal to the official code
#
# Whether rdlib computes what the official URD code computes is checked outside the book's build by the harness
# in `benchmarks/official/` (how it works: [the RD chapter](01_rd.ipynb), section 9), here with the same synthesised batch on both
# sides. The file it wrote, read here, names both commits and the machine:

# %% tags=["hide-input"]
ch.equivalence("urd")

# %% [markdown]
# ## 12. What this chapter does not reproduce
#
# Every table and result figure of the paper is either reproduced above, in a small form on the embedded
# benchmark at the book's CPU scale, or listed here with the reason (`rdlib.results.coverage` lists both):

# %% tags=["hide-input"]
not_reproduced("urd")

# %% [markdown]
# ## 13. Reading these results
#
# Three kinds of statement are on this page, and they rest on different things. **Equality with the official code**
# (section 11) does not depend on the budget: it holds for the computation itself, at any size and step count. **The
# numbers per category** (section 6) are measurements of URD as trained here; they would move with more steps, a
# larger image or a stronger teacher, which is why each table says its size and steps. **The verdicts** (sections 6
# and 8) are the paper's claims judged at this budget, each naming its design; a verdict that reads
# *inconclusive* says the design could not tell the two variants apart, not that they are equal, and the smallest
# effect it could have detected is in the sentence. The `full` profile reruns the chapter at 256² with a thousand
# steps per run on a GPU, and the `paper` profile with the paper's backbone and budget on MVTec AD; neither has
# produced the numbers on this page.

# %% [markdown]
# ## Conclusion
#
# Written by `Chapter.conclusion` from the plateaus and verdicts this page printed above:

# %% tags=["hide-input"]
ch.conclusion("URD")

# %% [markdown]
# ## Environment

# %% tags=["nbval-ignore-output"]
from rdlib.utils import environment_footer

display(Markdown(environment_footer()))
