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
# # Data: benchmarks, the embedded benchmark and anomaly sources
#
# **[Open this chapter in Colab](https://colab.research.google.com/github/rdlib/rdlib/blob/main/notebooks/00_data.ipynb)**
#
# The RD family is evaluated on four industrial benchmarks. None of them can be downloaded on the machines that
# build this book (no internet there, and their licences forbid redistribution), so the book's numbers come from an
# **embedded benchmark** generated offline from photos bundled with scikit-image. This chapter shows the real
# layouts that `rdlib` reads, the embedded benchmark, and the texture sources for anomaly synthesis.
#
# **What to take from this chapter.** Every number in the paper chapters comes from the embedded benchmark shown
# in section 2: five categories, each with its own normal training images and a test split of normal images and
# several defect types with pixel masks, generated from a fixed seed so that every build sees the same images.
# It is *not* MVTec AD: its defects are made by hand from other photos, and how hard it is for each method is
# measured in the chapters (the training-free reference beside every table is the yardstick). The synthetic
# anomalies of section 4 are what URD, AAND, RD-RE and RD++ train on; they never reuse a photo the test defects
# come from, so a method cannot learn the test defects from its training data.
#
# ## What this chapter finds
#
# Computed when this page was built, from the data it generated or read:
#
# - **The data** (section 2): {glue:md}`data_find_data`
# - **Its difficulty** (section 2): {glue:md}`data_find_calibration`
# - **Anomaly sources for synthesis** (section 3): {glue:md}`data_find_sources`

# %% tags=["parameters"]
PROFILE = "book"          # ci | book | full | paper (notebooks/params/<profile>.yaml)
DATA_ROOT = None          # real dataset root (MVTec AD, MPDD, BTAD or VisA), None for the embedded benchmark
DATA_FORMAT = None        # mvtec | mpdd | btad | visa | None (detect)
IMAGE_SIZE = 256          # embedded benchmark image side
N_TRAIN = 80              # embedded: normal training images per category
N_TEST_GOOD = 80          # embedded: normal test images per category
N_TEST_PER_DEFECT = 30    # embedded: defective test images per defect type
DTD_ROOT = None           # a DTD folder for anomaly synthesis (None: fall back, see below)
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
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from rdlib import analysis, viz
from rdlib.data import EMBEDDED_CATEGORIES, EmbeddedConfig, find_texture_source, generate_embedded, verify
from rdlib.data.embedded import CALIBRATION_RANGE

viz.book_style(precision=1)

# %% [markdown]
# ## 1. The real benchmarks and their layouts
#
# MVTec AD (15 categories; the RD family's headline benchmark)
# : `<cat>/train/good`, `<cat>/test/<defect>`, `<cat>/ground_truth/<defect>/<stem>_mask.png`; binary PNG masks.
#
# MPDD (6 categories of metal parts; URD reports it)
# : the same layout as MVTec AD; binary PNG masks.
#
# BTAD (`01`, `02`, `03`; URD reports it)
# : `<cat>/train/ok`, `<cat>/test/ok`, `<cat>/test/ko`, `<cat>/ground_truth/ko/<stem>.png`; masks without the
#   `_mask` suffix, `.bmp` or `.png`.
#
# VisA (12 categories; AAND and RD-RE report it)
# : `split_csv/1cls.csv` (object, split, label, image, mask) with paths relative to the root; masks hold instance
#   ids, binarised (> 0).
#
# `rdlib.data.read_dataset(root, category, fmt)` turns any of them into one sample table, and
# `python -m rdlib data verify <root>` checks a tree before a long run: it names the file and the fix for a wrong
# layout, a missing or extra mask, an unreadable image, an image/mask size mismatch or an empty category.

# %% [markdown]
# ## 2. The embedded benchmark
#
# Five categories in MVTec AD layout, generated deterministically from scikit-image's bundled CC0 /
# public-domain photos: three textures (`brick`, `grass`, `gravel`), a texture-like object set (`coins`) and an
# object (`coffee`, an espresso cup). Five hand-made defect types — **scratch** (thin Bézier stroke), **hole**
# (dark ellipse with a torn, lighter rim), **foreign** (a polygon of another photo, its colour statistics pulled towards the surroundings),
# **stain** (smooth blend toward a tint) and **warp** (local bulge, pinch or swirl) — none of which looks like the
# Perlin-noise blobs that URD, AAND and RD-RE synthesise for training.

# %%
cfg = EmbeddedConfig(size=IMAGE_SIZE, n_train=N_TRAIN, n_test_good=N_TEST_GOOD, n_test_per_defect=N_TEST_PER_DEFECT)
root, fmt = (generate_embedded(cfg=cfg), "mvtec") if DATA_ROOT is None else (DATA_ROOT, DATA_FORMAT)
print(f"data: {root.name if DATA_ROOT is None else root}")          # the folder, not this machine's path
counts = verify(root, fmt)
glue("data_find_data", Markdown(analysis.data_sentence(counts, analysis.dataset_label(root, fmt, DATA_ROOT is None))),
     display=False)
counts.pivot_table(index="category", columns=["split", "defect"], values="images", aggfunc="sum", fill_value=0).astype(int)

# %% [markdown]
# ### Calibrated to the papers' regime
#
# The papers report 95–99 I-AUROC on MVTec AD and claim gains of a fraction of a point to a few points there. A
# benchmark on which nothing works well cannot test such claims: the order of the methods would be set by noise and by
# how far each is from convergence. So the generator is calibrated at the image size where the chapters run
# ({glue:text}`calib_size`) until two yardsticks both land in {glue:text}`calib_range` I-AUROC per category: the
# training-free kNN reference (below, re-measured on every build) and RD trained to its plateau (the generator's
# design target; [the RD chapter](01_rd.ipynb) shows where RD lands, with its learning curves). The range leaves room above for a method that improves on RD and below for one that does worse,
# and every defect type should be visible to the reference (above chance). Each category has one knob, its defect
# strength, and the textures a second, how much of the photo a crop covers: grass and gravel are cropped wide, because
# the fine blades and pebbles of a close crop are below what the teacher's stride-4 features resolve at that size,
# and RD could not tell them from defects. The column "±" is the half-width of the 95 % interval a category's test split
# gives an I-AUROC at that level (Hanley–McNeil): differences between methods smaller
# than a few points are not resolved by one category.

# %%
pd.DataFrame({c: {"source photo": s.source, "kind": s.kind, "crop (of the region)": s.crop_frac,
                  "defect strength": s.strength} for c, s in EMBEDDED_CATEGORIES.items()}).T

# %% tags=["hide-input"]
if DATA_ROOT is None:
    calibration = analysis.reference_calibration(cfg, PROFILE)
    glue("calib_size", f"{analysis.calibration_size(PROFILE)}²", display=False)
    glue("calib_range", "–".join(f"{v:g}" for v in CALIBRATION_RANGE), display=False)
    display(Markdown(analysis.calibration_sentence(calibration)), calibration)
glue("data_find_calibration", Markdown(analysis.calibration_sentence(calibration) if DATA_ROOT is None else
                                       "not measured on real data (it is the embedded benchmark's)."), display=False)

# %% [markdown]
# Read the defect columns before the category's mean: a defect type the reference barely sees (the lowest cell of a
# row) is one on which a trained method can still improve on it, and a category whose types all sit near 100 leaves
# no room for a difference between methods. The generator's own test (`tests/test_embedded.py`) re-measures this table
# and fails when a category leaves the range or a defect type falls to chance, so a change to the generator cannot
# silently move the benchmark out of the papers' regime.

# %% [markdown]
# **No leakage.** Texture categories take training crops from one half of the source photo and test crops from the
# other half (the two regions are disjoint); the object category uses independently drawn poses, gain and sensor
# noise, so no test image repeats a training image. Below, the source photos with the two regions.

# %% tags=["hide-input"]
if DATA_ROOT is None:
    viz.source_photos(EMBEDDED_CATEGORIES)

# %% [markdown]
# One normal test image and one image per defect type for every category, with the ground truth outlined in green.

# %% tags=["hide-input"]
viz.defect_gallery(root, fmt)

# %% [markdown]
# Defect sizes: the fraction of the image each mask covers (small defects make pixel metrics harder).

# %%
areas = analysis.defect_areas(root, fmt)
areas.pivot_table(index="category", columns="defect", values="area %", aggfunc="median")

# %% [markdown]
# ## 3. Anomaly sources for synthesis
#
# URD, AAND and RD-RE synthesise training anomalies by blending textures from DTD into normal images through Perlin
# noise masks. DTD cannot be downloaded here, so `rdlib.data.find_texture_source` takes, in order: a DTD folder you
# give it (`$RDLIB_DTD`); Debian texture packages (`gimp-data` patterns, `tuxpaint-data` templates,
# `mypaint-data-extras` backgrounds, which `make` installs where `apt-get` runs as root); bundled images of
# scikit-image and scikit-learn; procedural textures. It logs which one it used (a warning when it is not DTD), and
# every run that synthesises records it.

# %%
source = find_texture_source(DTD_ROOT, warn=False)             # the sentence below says which one, once
glue("data_find_sources", Markdown(analysis.source_sentence(source)))
viz.texture_samples(source)

# %% [markdown]
# **Disjoint from the test set.** The embedded benchmark's *test* defects never come from these sources: its
# foreign-material patches are cut from their own list of photos, and neither that list nor any category's photo is
# among the fallback textures (`tests/test_synthesis.py` compares them pixel by pixel), so a method that synthesises
# training anomalies is not scored on its own textures.

# %%
analysis.anomaly_sources()

# %% [markdown]
# ## 4. Synthetic anomalies
#
# `rdlib.synthesis` builds the training anomalies of every method once: a Perlin mask as DRAEM draws it (lattice
# $2^a \times 2^b$, $a, b \sim U\{0..5\}$, rotated by up to ±90°, thresholded at 0.5), optionally restricted to the
# object's foreground, and DRAEM's blend of an (augmented) texture $T$ into the normal image $I$:
#
# $$I_a = I\,(1 - M) + (1 - \beta)\,T\,M + \beta\,I\,M, \qquad \beta \sim U[0, 0.8).$$
#
# ```{literalinclude} ../../rdlib/synthesis/blend.py
# :pyobject: draem_blend
# ```
#
# The noise is drawn for the whole batch at once, on the batch's device:
#
# ```{literalinclude} ../../rdlib/synthesis/noise.py
# :pyobject: perlin_from_angles
# ```
#
# Each paper's constants are a preset (with the line of the spec they come from):

# %%
analysis.synthesis_presets()

# %% [markdown]
# Every preset on every category of the embedded benchmark (one training image each): the synthetic image, with the
# mask outlined in green. Texture categories have no foreground mask; on `coffee` the anomaly stays on the cup for
# the presets that use one. RD++ adds simplex noise in one small box and trains without the mask.

# %% tags=["hide-input"]
if DATA_ROOT is None:
    synth_sets = viz.synthesis_gallery(root, sorted(EMBEDDED_CATEGORIES), ["draem", "urd", "aand", "rdre", "rdpp"], source,
                                       IMAGE_SIZE)

# %% [markdown]
# How large the synthetic anomalies are (mask area, % of the image, over many draws of one category) next to the
# embedded benchmark's hand-made test defects: training and test anomalies differ in shape and size on purpose.

# %% tags=["hide-input"]
if DATA_ROOT is None:
    viz.synthetic_areas(synth_sets, "brick", ["draem", "urd", "aand", "rdre"], areas["area %"])

# %% [markdown]
# ## Conclusion
#
# The later chapters train and judge every method on this data — {glue:md}`data_find_data` Its difficulty, read
# from the training-free reference: {glue:md}`data_find_calibration` Where a trained method lands well below that
# reference, its chapter has to say why; it is not a property of the data. The synthetic anomalies URD, AAND, RD-RE
# and RD++ train on are blended from {glue:md}`data_find_sources`

# %% [markdown]
# ## Environment

# %% tags=["nbval-ignore-output"]
from rdlib.utils import environment_footer

display(Markdown(environment_footer()))
