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
# # One protocol for the whole family: RD, RD++, URD, AAND, RD-RE and a nearest-neighbour reference
#
# **[Open this chapter in Colab](https://colab.research.google.com/github/rdlib/rdlib/blob/main/notebooks/06_comparison.ipynb)**
#
# Each paper compares itself with RD under its own protocol: its own teacher, its own PRO function, sometimes the
# best test-set checkpoint. This chapter trains every method of the book the same way — same teacher, image size,
# data, batch size, last checkpoint, both PRO variants — each with the schedule its chapter chose where its learning
# curve flattens, on three categories with three seeds, and then asks of each published "ours beats RD" claim
# whether our runs support it. It also measures how each method survives additive Gaussian noise (RD-RE's Fig. 8
# protocol) and what each costs at inference.
#
# The runs are tasks of a **Dask** sweep (`rdlib.sweep`): on this book's 2-core machine a local cluster of two
# single-threaded worker processes; on a cluster, `ADDRESS` points at its scheduler and each task asks for a GPU.
# A finished run is found by its key and not trained again, so the runs the paper chapters already trained with
# the same settings are reused here, and an interrupted build resumes.
#
# ## What this comparison finds
#
# Computed from this page's runs when it was built; the sections below hold the evidence. Every method here is
# trained at {glue:text}`cmp_size` with an EfficientNet-Lite0 teacher on the embedded benchmark, for the hundreds of
# optimizer steps its curve needs to flatten on this data, not the papers' budgets on MVTec AD: each statement is about
# the methods at this CPU scale, not a verdict on the papers, and a claim is judged only on runs shown converged.
#
# - **Plateaus** (section 2): {glue:md}`comparison_find_plateaus`
# - **Order of the methods** (section 3): {glue:md}`comparison_find_ranking`.
# - **Against the training-free reference** (section 3): {glue:md}`comparison_find_reference`
# - **Where the reference leads** (section 3, per defect type): {glue:md}`comparison_find_defects`
# - **The papers' claims** (section 4): {glue:md}`comparison_find_claims`.
# - **On every category** (section 7, the chapters' main runs, one seed): {glue:md}`comparison_find_longer`.
# - **Equal to the official code** (RD++, last section): {glue:md}`comparison_find_equivalence`

# %% tags=["parameters"]
PROFILE = "book"                  # the book profile these pages were built in (ci | book | full | paper)
METHOD_PROFILE = "book"           # the methods' profile for the comparison runs: the chapters' own (their runs reused)
DATA_ROOT = None                  # real dataset root, None for the embedded benchmark
DATA_FORMAT = None                # mvtec | mpdd | btad | visa | None (detect)
N_TRAIN = 80                      # embedded benchmark sizes (ignored with DATA_ROOT), as in the other chapters
N_TEST_GOOD = 80
N_TEST_PER_DEFECT = 30
METHODS = ["rd", "rdpp", "urd", "aand", "rdre", "patch_knn"]
CATEGORIES = ["brick", "gravel", "coffee"]   # the chapters' claim categories (≥ 3 categories × 3 seeds for a verdict)
SEEDS = [111, 112, 113]           # every method and category with each seed (≥ 3 for a verdict)
CURVE_EVAL_EVERY = {"rd": 5, "rdpp": 5, "urd": 20, "aand": 10, "rdre": 25}   # first seed: evaluated every this many
                                  # epochs or steps (each method's budget unit, as its chapter); 0 or absent: no curve
MAIN_CATEGORIES = ["brick", "grass", "gravel", "coins", "coffee"]   # section 7: the chapters' main runs, one seed
WORKERS = 2                       # Dask worker processes of the local cluster (ignored with ADDRESS)
THREADS = 1                       # torch threads per worker
ADDRESS = None                    # an existing Dask scheduler, e.g. "tcp://10.0.0.5:8786" (None: a local cluster)
SWEEP_TABLE = None                # the sweep's CSV/Parquet table (None: <runs>/sweeps/<METHOD_PROFILE>.csv)
NOISE_CATEGORIES = ["brick", "coffee"]   # Gaussian-noise robustness on these categories, every method, first seed
NOISE_SIGMAS = [0.01, 0.05, 0.1]  # noise standard deviations on the [0, 1] image scale
COST_BATCHES = [1, 16]
CHAPTER_RUNS = True               # also read the paper chapters' main runs (PROFILE, one seed) by key, not retrained
RUNS_DIR = None                   # None: $RDLIB_RUNS or <repo>/runs
PROGRESS = True
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
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from rdlib import comparison
from rdlib.chapter import start
from rdlib.claims import METHOD_LABELS, read_claims
from rdlib.methods import method_profile
from rdlib.runs import default_runs_dir

IMAGE_SIZE = comparison.protocol_size(METHODS, METHOD_PROFILE)      # one protocol: one size for every method
ch = start("rd", METHOD_PROFILE, CATEGORIES, data_root=DATA_ROOT, data_format=DATA_FORMAT, n_train=N_TRAIN,
           n_test_good=N_TEST_GOOD, n_test_per_defect=N_TEST_PER_DEFECT, runs_dir=RUNS_DIR, announce=False,
           name="comparison")
LABELS = {m: METHOD_LABELS.get(m, m) for m in METHODS}
table_path = Path(SWEEP_TABLE) if SWEEP_TABLE else Path(RUNS_DIR or default_runs_dir()) / "sweeps" / f"{METHOD_PROFILE}.csv"
print(f"data: {ch.data_name}; methods' profile {METHOD_PROFILE!r} at {IMAGE_SIZE}²; seeds {SEEDS}; device: {ch.device}")

# %% [markdown]
# ## 1. The protocol
#
# Every method runs its {glue:text}`cmp_profile` profile, the one its chapter trains: the offline EfficientNet-Lite0
# teacher (ImageNet weights, ReLU'd maps), {glue:text}`cmp_size` images, batch 16, Adam with each paper's learning
# rates, the **last** checkpoint, no selection on the test set. The schedules are each method's own (the table below
# lists them), each chosen in its chapter where the learning curves flatten on this benchmark; **RD++**, which has
# no chapter, runs RD's schedule, and its curve is read here for the first time. The kNN reference trains nothing: it
# keeps 10 % of the teacher's mid-level patches and scores a pixel by its distance to the nearest one.
#
# Because the profile is the chapters' own, every run a chapter already trained — each method's main runs (first
# seed) and the runs of its claim against RD (three seeds on these three categories) — has the same key here and is
# read, not trained again; what this page trains is RD++ and any run a chapter did not need.
#
# **RD++** (Tien et al., CVPR 2023), the baseline URD and AAND quote, has no chapter of its own; `rdlib/methods/rdpp/`
# adds to RD a projection layer per teacher level and trains it with
# $\mathcal{L} = \mathcal{L}_{KD} + 0.2\,(\mathcal{L}_{SSOT} + 0.01\,\mathcal{L}_{recon} + 0.1\,\mathcal{L}_{contrast})/1.11$:
#
# ```{literalinclude} ../../rdlib/methods/rdpp/loss.py
# :pyobject: projection_loss
# ```
#
# The official code computes $\mathcal{L}_{SSOT}$ as a Sinkhorn divergence between a batch of projected features
# and *a shuffle of the same batch*: the same empirical distribution, so the divergence and its gradient are zero
# up to rounding (`tests/test_rdpp.py` checks it), while it takes about 80 % of a CPU step. `rdlib` keeps it by
# default, as the code does; the `book` profile sets `ssot=False` (every other profile computes it).
#
# The schedules, straight from the profiles:

# %%
pd.DataFrame({LABELS[m]: {k: str(v) for k, v in method_profile(m, METHOD_PROFILE)["options"].items()
                          if k not in ("teacher", "betas")} for m in METHODS}).T.fillna("")

# %% [markdown]
# ## 2. The sweep
#
# The sweep runs in two stages (`rdlib.comparison.sweep_to_plateau`). First every method trains on each category
# with the first seed, evaluated on the test set during training ({glue:text}`cmp_curves`), and each trained method's
# plateau is read from those curves by the book's one rule (`rdlib.plateau.plateau`, explained in
# [the RD chapter](01_rd.ipynb), section 4). Then the other seeds train only for the methods that converged (and the
# training-free reference): a method not converged at its schedule gets no verdict, so its other seeds would cost
# CPU time and decide nothing. Within each stage `rdlib.sweep.plan` checks every (method, category, seed) before a
# worker starts, and `run_sweep` (the executor every chapter's grid uses too) submits the runs that are not
# finished to the Dask cluster, collects each failure with its traceback instead of stopping, and merges every row
# into one table ({glue:text}`cmp_table`). The same grid from a shell, without the plateau stage:
# `python -m rdlib sweep --methods rd,rdpp,urd,aand,rdre,patch_knn --categories brick,gravel,coffee --seeds 111,112,113
# --profile book --data embedded --table runs/sweeps/book.csv`.
#
# The table is the long table every verdict of this book is computed from: one row per run with its method,
# category, seed, key, status (and error, if it failed), every metric, the image size, the optimizer steps and the
# training seconds. A reader who wants a number this page does not show can load it and compute it from the same
# runs; a run that failed is a row with its error, never a silently missing cell (so the sweep below does not
# also log each failure as it happens, and its workers do not log the texture source each run records).

# %% tags=["nbval-ignore-output"]
swept = comparison.sweep_to_plateau(METHODS, CATEGORIES, SEEDS, METHOD_PROFILE, ch.root, CURVE_EVAL_EVERY,
                                     data_format=DATA_FORMAT, table=table_path, runs_dir=RUNS_DIR, address=ADDRESS,
                                     workers=WORKERS, threads=THREADS, labels=LABELS)
print(swept.report)

# %% [markdown]
# **Plateaus.** Each trained method's mean test I-AUROC curve over the categories (first seed), where it settles and
# whether the schedule trains past it. For a method trained in stages (AAND, RD-RE) the curve is its last stage's,
# the model that is scored, at the step count over all stages, as in its chapter. The chapters show the curves
# themselves, from these same runs (read by key); RD++, which has no chapter, is read only here.

# %% tags=["hide-input"]
ch.plateaus.update(swept.plateaus)                          # every verdict below asks each run's method's plateau
ch.finding("plateaus", swept.finding(LABELS))
display(Markdown("\n\n".join(p.sentence for p in swept.plateaus.values()) or "_No method logged a learning curve._"))
swept.plateau_table(LABELS)

# %% [markdown]
# **RD++'s learning curves**, which no chapter shows: loss, I-AUROC and P-AUROC of each category's first-seed run
# against the optimizer step; in the I-AUROC panel the mean over categories (black), the band of ±{glue:text}`plateau_tol` points around the
# level it settles at (grey) and, where it converged, the step it settles by (dashed).

# %% tags=["hide-input"]
swept.curves_figure("rdpp")

# %% [markdown]
# **The runs.** Each is one row of the long table, marked converged or not by its method's plateau (a run of a
# training-free method always is); a method that did not converge has its first seed only.

# %% tags=["hide-input"]
rows = swept.rows                                           # one row per task, first seed first
ok, failed = rows[rows.status != "failed"].copy(), rows[rows.status == "failed"]
ok = ch.marked(ok)                                          # each run converged or not, by its method's plateau
steps = ok.loc[ok.steps > 0, "steps"]                       # optimizer steps a run (training-free: 0)
ch.glue(cmp_size=f"{IMAGE_SIZE}×{IMAGE_SIZE}", cmp_table=f"{table_path.name} in the runs folder",
        cmp_steps=f"{steps.min():.0f} to {steps.max():.0f}" if len(steps) else "no", cmp_profile=METHOD_PROFILE,
        cmp_curves=swept.curves_sentence(LABELS), cmp_scale=f"{IMAGE_SIZE}² on the {ch.data_name}, {ch.teacher} teacher")
display(Markdown(f"{len(ok)} of {len(rows)} runs finished"
                 + (": every one." if failed.empty else f"; **{len(failed)} failed**, listed here and left out below:")))
if not failed.empty:
    display(failed[["method", "category", "seed", "error"]])

# %% [markdown]
# ## 3. Results: mean ± 95 % interval over categories and seeds
#
# Each cell is the mean over categories × seeds (a method not converged: its first seed only) ± the half-width of its 95 % interval (`rdlib.stats.mean_interval_table`:
# a t-interval over the categories' means, since a claim about methods is a claim about categories). Both PRO variants are shown: the RD code's
# per-image PRO, which URD reports, and the standard pooled AUPRO@0.3.

# %%
comparison.method_results(ok, ["i_auroc", "i_ap", "p_auroc", "p_ap", "pro_rd", "aupro"], LABELS)

# %% [markdown]
# Training seconds per run, as the workers measured them (two runs at a time on this machine, one thread each;
# the optimizer steps and their data, without the learning curve's evaluations or checkpoint writes):

# %% tags=["nbval-ignore-output"]
ok.groupby("method", sort=False).train_seconds.mean().rename(index=LABELS).to_frame("train s / run").T

# %% [markdown]
# **Ranks.** Within each (category, seed) cell the methods are ranked (1 = best); the mean rank says which method
# is best *on the same data*, which an average over categories of different difficulty can hide.
# A method can have the best mean and not the best rank when it wins by far on one category and loses narrowly
# on the others; the two together say whether an advantage is broad or carried by one category.

# %%
ranks = comparison.rank_table(ok, LABELS)
ch.finding("ranking", "by mean rank on I-AUROC within each category × seed cell: " + ", ".join(
    f"{m} ({r:.1f})" for m, r in ranks[("I-AUROC", "mean rank")].items()) + " (1 = best in every cell)")
ranks

# %% [markdown]
# **Per category.** Each dot is a method's mean over seeds on one category, its bar the 95 % t-interval over the
# seeds; the dashed line is chance.

# %%
comparison.method_figure(ok, METHODS, LABELS)

# %% [markdown]
# **Against the training-free reference.** A trained method that the nearest-neighbour reference beats by far has
# not learned what its paper says it learns, on this data and schedule; each method against kNN, paired over
# categories × seeds (`rdlib.claims.judge`, the category as the unit):

# %%
judged_knn, behind = comparison.versus_reference(ok, METHODS, "patch_knn", LABELS)
display(Markdown("\n".join(f"- {s}" for s in judged_knn.get("sentence", [])) + "\n\n" + behind))
ch.finding("reference", behind or "No training-free reference in this comparison.")

# %% [markdown]
# Where kNN is ahead, that is the first thing to explain, before any claim of one RD variant over another. Training
# longer does not explain it here: the methods are at their plateaus (section 2), so more steps would move them by
# less than the rule's tolerance. Which defects make the difference does: each defect type's I-AUROC against the
# normal test images, from every run's stored predictions, averaged over categories and seeds:

# %%
by_defect, lead = comparison.defect_types(ok, LABELS, "patch_knn")
ch.finding("defects", lead or "no training-free reference in this comparison.")
display(Markdown(lead))
by_defect

# %% [markdown]
# How to read that table: kNN compares each test patch with every kept normal patch of the same teacher's levels 2
# and 3, so a defect that changes the local texture is far from every kept patch however small it is, while a
# student that rebuilds the teacher from a bottleneck also learns to rebuild what is *near* normal. Where the gap
# is near zero for some defect types and large for others, the trained methods find the first kind as well as the
# memory does and miss part of the second: the reference's lead comes from particular kinds of defect, through its
# mechanism, and — the trained methods being at their plateaus — not from training that stopped too early. A gap
# even across all types would instead say that the students are uniformly less precise than the memory. On MVTec AD, PatchCore-style nearest-neighbour detectors are reported at or
# above RD's level in the literature, so a reference that is hard to beat is not peculiar to this data.

# %% [markdown]
# ## 4. The papers' claims at this budget
#
# Every "our method beats RD" and "... beats RD++" of the URD, AAND and RD-RE result tables on MVTec AD
# (`rdlib.claims.paper_claims` reads them from `paper_reported.yaml`), each judged on the runs above by
# `rdlib.claims.judge`: our mean difference paired over categories × seeds, its 95 % interval (a t-interval over
# the categories) and the verdict — *supported* when the whole interval is above zero, *contradicted* when below,
# *inconclusive* otherwise. These are verdicts on **these runs at this CPU scale** (the design column: categories ×
# seeds, size and optimizer steps of each method) — each method at its plateau on the embedded benchmark, with a
# small teacher at {glue:text}`cmp_size` — not on the papers, whose numbers come from
# {glue:text}`cmp_paper_protocol`; "below detectable" marks a paper's effect smaller than the smallest effect this
# design detects. A claim is judged only when both methods' runs are converged (section 2) and the design has at
# least {glue:text}`claim_design`; otherwise the row says "not judged" and still shows our difference and its design.
# PRO follows the book's one rule (`rdlib.results.our_pro_metrics`): the RD code's per-image PRO where the paper used
# that code, and both it and the pooled AUPRO, as two claims, where the paper does not say which.

# %%
judged = comparison.judged_claims(ok)
ch.glue(cmp_paper_protocol=comparison.paper_protocol())          # read from the quoted tables' protocols
comparison.claims_display(judged)

# %% [markdown]
# **The ablation orderings**, as the paper chapters judged them at their budgets (the same `rdlib.claims.judge`
# computed them and the chapters saved them). Each rests on its own design, named in its row; a chapter judges a claim
# only on converged runs of at least {glue:text}`claim_design`, and lists the others as not judged.

# %%
ablations = read_claims(PROFILE, RUNS_DIR)
display(Markdown("_No chapter saved ablation verdicts in this profile (run the paper chapters first)._")
        if ablations.empty else comparison.claims_display(ablations, paper=False))

# %%
counts, sentence = comparison.tally(judged, ablations)
ch.finding("claims", sentence + " at this budget")
counts

# %% [markdown]
# ## 5. Robustness to Gaussian noise (RD-RE Fig. 8)
#
# RD-RE's Fig. 8 adds white Gaussian noise to the test images and reports that AUROC moves by less than 3 %. Here
# the same test (`rdlib.robustness.noise_robustness`: noise of standard deviation σ on the [0, 1] image, clipped,
# fixed generator) for every method, on {glue:text}`cmp_noise_cats` with the first seed's runs; the table is the
# change from the clean test set, in points, averaged over those categories.
#
# Two things decide a row. A method whose student (or memory bank) describes the texture of normal images closely
# sees noise as a new texture everywhere and loses more; a method that scores by a head trained on synthetic
# anomalies, as RD-RE does, may ignore noise it was never asked to flag. And a method that is near chance on clean
# images has nothing to lose: a small change in its row is not robustness. Read each row beside its clean
# I-AUROC in section 3.

# %%
ch.glue(cmp_noise_cats=", ".join(NOISE_CATEGORIES))
noise = comparison.noise_drops(swept.tasks, SEEDS[0], NOISE_CATEGORIES, NOISE_SIGMAS, LABELS, RUNS_DIR, ch.device)
display(Markdown("_No run to test._") if noise.empty else noise)

# %% [markdown]
# ## 6. Cost at inference
#
# Parameters the forward pass uses and holds, GFLOPs per image, peak activation memory and median latency of the
# inference fast path (`rdlib.cost.inference_cost`: BatchNorm folded, channels-last, inference mode) at
# {glue:text}`cmp_size`, batch 1 and 16, for the trained models above (first category, first seed: the kNN
# reference's cost depends on its memory bank) on this machine's CPU{glue:text}`cmp_gpu_note`. Latency depends on
# the machine and its load; the ratios between methods are the part to read.
#
# At inference RD, URD and AAND run a teacher and a student of about the same size, so their costs differ by
# what each adds (URD's GII modules, AAND's RAA branches); RD++ adds its projection layers, RD-RE a student
# encoder and a segmentation head, and the kNN reference replaces the student with a nearest-neighbour search
# whose cost grows with its memory bank. The papers' efficiency claims are about these additions, at 256² on a GPU.

# %% tags=["nbval-ignore-output"]
cost = comparison.inference_costs(swept.tasks, IMAGE_SIZE, COST_BATCHES, LABELS, RUNS_DIR)
ch.glue(cmp_gpu_note=" and on the GPU" if any(c.endswith("cuda") for c in cost.columns) else " (no GPU here: no GPU columns)")
cost

# %% [markdown]
# ## 7. Does the order hold on every category? The chapters' main runs
#
# The paper chapters trained each method once on each of {glue:text}`cmp_main_cats` categories at
# {glue:text}`cmp_chapter_size` (their `book` profiles). Read by key here, not retrained: one seed each, so no
# verdict, but a check that the order above, on three categories, is not an artefact of which three. RD++ has no
# chapter of its own, so its row holds only the runs this page trained (its categories, first seed); a chapter that
# trains fewer categories (RD-RE's, in the CPU book) says how many. The last column is this page's mean over its categories and seeds.
#
# Why a verdict here can differ from the same pair's verdict in a paper chapter: a chapter judges on its five
# categories with one to three seeds each, this page on three categories with three seeds each — another design,
# with another smallest detectable effect, which each sentence names.

# %%
CHAPTER_SIZE = method_profile("rd", PROFILE)["options"]["image_size"]
ch.glue(cmp_chapter_size=f"{CHAPTER_SIZE}²", cmp_main_cats=len(MAIN_CATEGORIES))
chapters = comparison.chapter_main_runs(METHODS, MAIN_CATEGORIES, PROFILE, ch.root_at(CHAPTER_SIZE), LABELS, DATA_FORMAT,
                                        RUNS_DIR, compare=ok, compare_size=IMAGE_SIZE) if CHAPTER_RUNS else None
ch.finding("longer", comparison.order_sentence(chapters, CHAPTER_SIZE) if CHAPTER_RUNS else "not read (CHAPTER_RUNS is off)")
chapters

# %% [markdown]
# ## 8. What this comparison shows, and what it does not
#
# The one protocol removes the differences between the papers' setups — teacher, PRO function, checkpoint choice —
# so that a difference between two methods here is a difference between the methods as trained here, and training
# each method past its plateau removes the schedule as an explanation: a converged method would not change by
# more than the rule's tolerance with more steps. What it does not remove is the scale: a small teacher at
# {glue:text}`cmp_size` on a generated benchmark is not MVTec AD at 256² with a WideResNet, so the verdicts of
# section 4 say which of the papers' claims show at this scale, which are contradicted here, and which this design
# cannot decide (with the smallest effect it could have seen); none of them says whether a paper's claim holds at
# its own scale. A method that did not converge at its schedule (section 2) is labelled so in every table and its
# claims are not judged.
#
# The training-free reference is the result to keep in mind when reading any order of the trained methods: where
# it leads, the defect-type table of section 3 says on which defects, which is where a trained method's student
# rebuilds what it should not.

# %% [markdown]
# ## Paper vs ours
#
# The papers' own numbers for each pair are the "paper Δ" column of section 4: {glue:text}`cmp_paper_protocol`,
# hundreds to thousands of optimizer steps. Ours differ in every respect a reader
# should weigh:

# %%
ch.protocol(len(CATEGORIES), "comparison", seeds=len(SEEDS), steps=f"{steps.min():.0f} to {steps.max():.0f}",
            method_profile=METHOD_PROFILE)

# %% [markdown]
# ## Equal to the official code: RD++
#
# RD++ has no chapter of its own; it is the baseline URD and AAND quote. The harness in `benchmarks/official/`
# (described in [the RD chapter](01_rd.ipynb), section 9) checks rdlib's RD++ against the official "Revisiting Reverse Distillation"
# code: the same random WideResNet50-2 weights through an explicit key map, the same images and the same noisy batch,
# then the initialisation, features, projections, each loss term, every gradient, one optimizer step, the anomaly map and the score. The
# file it wrote, read here, names both commits and the machine:

# %% tags=["hide-input"]
ch.equivalence("rdpp")

# %% [markdown]
# ## Conclusion
#
# Computed from this page's runs: {glue:md}`comparison_find_plateaus` The order, {glue:md}`comparison_find_ranking`.
# {glue:md}`comparison_find_reference` Verdicts: {glue:md}`comparison_find_claims`. As section 8 says, these are
# statements about the methods as trained here — {glue:text}`cmp_scale` — not about the papers at their own scale.

# %% [markdown]
# ## Environment

# %% tags=["nbval-ignore-output"]
from rdlib.utils import environment_footer

display(Markdown(environment_footer()))
