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
# # Kernels: the cosine anomaly map in Triton
#
# **[Open this chapter in Colab](https://colab.research.google.com/github/rdlib/rdlib/blob/main/notebooks/02_kernels.ipynb)**
#
# Every method in this book scores an image the same way: per level $k$, $M^k = 1 - \cos(f_T^k, f_S^k)$ along
# channels, each map upsampled bilinearly to the image, summed, smoothed with a Gaussian ($\sigma = 4$), and the
# maximum taken. This chapter explains how `rdlib` computes that map, why the per-level distance is a Triton
# kernel and the rest is two matrix products, shows that both agree with the PyTorch reference, and reports speed.
#
# ## What this chapter finds
#
# Computed when this page was built:
#
# - **Correctness** (section 3): {glue:md}`kernels_find_correctness`
# - **Speed on this CPU** (section 5): {glue:md}`kernels_find_cpu`
# - **On a GPU** (section 5): {glue:md}`kernels_find_gpu`

# %% tags=["parameters"]
PROFILE = "book"
SHAPE_SCALE = 1.0      # spatial scale of the test shapes in the correctness check (1.0 means the real 256x256 shapes)
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
import os

import torch

if not torch.cuda.is_available():   # no GPU: the same kernel source in Triton's interpreter (set before importing it)
    os.environ["TRITON_INTERPRET"] = "1"

import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from rdlib.kernels import report
from rdlib.kernels.aot import AOTUnavailable
from rdlib.viz import book_style

book_style(precision=3)
device = "cuda" if torch.cuda.is_available() else "cpu"
print("device:", torch.cuda.get_device_name(0) if device == "cuda" else "CPU (kernel runs in the Triton interpreter)")

# %% [markdown]
# ## 1. Roofline: bytes and FLOPs per map
#
# For one pixel of one level with $C$ channels the distance needs $\langle t,s\rangle$, $\lVert t\rVert^2$ and
# $\lVert s\rVert^2$: three multiply-adds per channel, **6 FLOPs per channel**, while it must read **two values
# per channel** (4 bytes each in fp32, 2 in fp16/bf16). Arithmetic intensity is therefore 6 / 8 = 0.75 FLOP/byte in
# fp32 (1.5 in half precision). An H100 sustains roughly 3 TB/s of memory bandwidth against tens of TFLOP/s of
# fp32 arithmetic (a ridge point near 20 FLOP/byte), so the map is **memory bound by more than an order of
# magnitude**: the only thing that matters is reading each feature tensor once. The table counts that minimum.

# %%
report.roofline()

# %% [markdown]
# The reference `1 - F.cosine_similarity(t, s)` + `F.interpolate` + sum reads the features several times (the
# product, then each norm) and writes full-size intermediates: three 256² maps that are upsampled, then summed,
# then blurred, for maps whose levels hold at most 64² values.
#
# ## 2. Design
#
# **What runs in Triton: the per-level distance.** `rdlib/kernels/cosine_map.py` launches one program per
# (image, block of `BLOCK_HW` pixels, range of channels); it walks its channels in `BLOCK_C` chunks, loads both tiles
# with masks (any shape, any strides, so channels-last or sliced tensors need no copy), converts to fp32, and keeps
# $\langle t,s\rangle$, $\lVert t\rVert^2$, $\lVert s\rVert^2$ in registers. No normalised copy of either tensor
# exists at any point; the kernel writes one fp32 value per pixel. Epsilon rule (the same as the PyTorch
# reference): $\cos = \langle t,s\rangle / \max(\lVert t\rVert\lVert s\rVert, 10^{-8})$, so a zero vector gives
# $\cos = 0$ and a distance of 1.
#
# Three details decide whether it reaches memory bandwidth:
#
# * **Vector loads.** When $H$ and $W$ merge into one axis (NCHW-contiguous and channels-last tensors), the kernel
#   indexes pixels as one flat axis. Triton then sees `BLOCK_HW` consecutive addresses (NCHW) or consecutive
#   channels (channels-last) and emits 128-bit loads; with a separate $h$ and $w$ it could not prove contiguity
#   through the division and would load element by element. Section 4 checks this on the compiled code.
# * **Channel split.** Deep levels have few pixels and many channels: WideResNet50-2's third level at batch 1 is
#   256 pixels × 1024 channels, two programs of 128 pixels, on a GPU with 132 SMs. When pixel blocks alone give
#   fewer than 4 programs per SM, `plan()` cuts the channel axis into ranges (at least 4 chunks each), every program
#   writes its three partial sums, and a second small kernel adds them in a fixed order. That costs 12 bytes per pixel
#   and range against the 2 × 4 × $C$ bytes per pixel read, and stays deterministic (no atomics).
# * **Tiles.** 2,048 elements per tensor per step (16 channels × 128 pixels in fp32 at 4 warps): 16 values per
#   thread and tensor, enough loads in flight per SM to cover memory latency, few enough registers for several
#   programs per SM. These are reasoned defaults, not measured ones: `bench_cosine_map.py --tune` sweeps the
#   alternatives on a GPU.
#
# **What does not: upsample, sum and blur.** These three steps are linear in the small maps. With $A_k$ the
# bilinear (align-corners) resize matrix and $G$ the Gaussian matrix with scipy's reflect border,
# $G\,(\sum_k A_k M^k A_k^\top)\,G^\top = \sum_k P_k M^k P_k^\top$ with $P_k = G A_k$ precomputed once per shape.
# Two small matrix products per level (cuBLAS on a GPU, BLAS on a CPU) replace three resizes, two additions and a
# 33-tap separable convolution, and the 256² output is written once. A custom upsampling kernel would have to
# read neighbours across program boundaries and could not absorb the blur; since these maps are $C$ times smaller
# than the features (at least 24×), a Triton version of this part would save nothing worth its complexity.
#
# **Dispatch.** `AnomalyMap(backend="auto")` uses the kernel on CUDA GPUs of compute capability ≥ 7.5 for fp32 and
# fp16, and for bf16 from 8.0 (Colab's T4 is 7.5: bf16 falls back), and the PyTorch reference everywhere else (CPU,
# other devices, Triton missing). `backend="torch"|"triton"` or `RDLIB_ANOMALY_MAP_BACKEND` force a path; forcing
# Triton where it cannot run is an error, never a silent fallback. **Inference only**: the training losses use
# PyTorch ops with autograd, so the kernel needs no backward. If autograd would need the map's gradient (features that
# require grad, outside `torch.no_grad()`), `auto` takes the PyTorch path and a forced `triton` is an error rather than
# a map that silently stops the gradient.

# %%
report.backends()

# %% [markdown]
# ## 3. Correctness
#
# The kernel against the PyTorch reference on the real level shapes at 256² (scaled by `SHAPE_SCALE` in quick
# runs), batch 2, in each dtype; inputs are rounded to the dtype first, so the error is the kernel's own
# (accumulation in fp32). On a machine without a GPU this runs the identical kernel source in Triton's interpreter;
# the unit tests (`tests/test_kernels.py`) add odd shapes, non-contiguous inputs and zero vectors.

# %%
errors = report.correctness(device, SHAPE_SCALE)
glue("kernels_find_correctness", Markdown(report.correctness_sentence(errors)), display=False)
errors

# %% [markdown]
# ## 4. The compiled kernel, without a GPU
#
# The interpreter checks the kernel's arithmetic, but it never builds GPU code. Triton's compiler, its LLVM back end
# and the `ptxas` assembler it ships all run on a CPU, so `rdlib.kernels.aot.compile_cosine_kernels` produces the
# exact machine code a Turing (sm_75, Colab's T4), Ampere (sm_80, A100) or Hopper (sm_90, H100) GPU would run,
# specialised as Triton's launcher would specialise it for the given tensors, and reads it: the width of every
# global load, the registers per thread and any register spills. Shapes: WideResNet50-2 level 1 at batch 8. (A process
# that interprets kernels, as this one does without a GPU, cannot also compile them: Triton's own library functions
# are then interpreter objects. The compilation runs in a child process without `TRITON_INTERPRET`.)

# %%
try:
    compiled = report.compiled_kernels()
except AOTUnavailable as e:           # e.g. Colab's Triton: the rest of the chapter does not depend on this table
    compiled = Markdown(f"**Skipped:** {e}. The rendered book shows this table for the Triton version it pins.")
compiled

# %% [markdown]
# Per loop step each thread issues 128-bit loads only (8 in fp32, 4 in half precision: the same 16 bytes carry twice
# the values) for both contiguous layouts, and nothing spills. A sliced tensor whose rows do not merge still compiles
# and stays correct, but falls back to 32-bit loads, which is why the flat path exists. The register counts bound
# occupancy: with 65,536 registers per SM, a 4-warp program of $r$ registers per thread leaves room for
# $\lfloor 65536 / (128 r) \rfloor$ programs per SM, at least the 4 per SM that `plan()` aims for.
#
# One surprise: this Triton compiles the bfloat16 kernel for sm_75 too (bf16 is only loaded and converted to fp32,
# which needs no bf16 arithmetic). The dispatch still sends bf16 on GPUs below 8.0 to the PyTorch path, because that
# combination has never run on real hardware here.

# %% [markdown]
# ## 5. Speed
#
# **This machine.** The reference (`cosine_similarity` + `interpolate` + sum + blur) against `rdlib`'s PyTorch path
# (distance + matrix operator), which is what every CPU run in this book uses: the median of 21 repetitions, the two
# candidates interleaved (`rdlib.timing.interleaved_latency_ms`) so that load from elsewhere on the machine falls on
# both alike (timings still vary between builds):

# %% tags=["nbval-ignore-output"]
speed = report.cpu_speed()
glue("kernels_find_cpu", Markdown(report.speed_sentence(speed)), display=False)
speed

# %% [markdown]
# **GPU.** `benchmarks/bench_cosine_map.py` times the plain PyTorch map (per level `1 - F.cosine_similarity`,
# `F.interpolate`, sum, as the official RD code computes it) against `rdlib`'s GPU path (kernel + matrix operator,
# blur left out of both) with CUDA events (warm-up, median of 100 runs) for WideResNet50-2 and EfficientNet-Lite0
# shapes, batch 1/8/32, fp32/fp16/bf16, and reports the achieved bandwidth (both feature tensors read once plus the
# output written once, over the time) next to the device's measured copy bandwidth. Goals on an H100: at least 2×
# faster than the reference and at least 60 % of copy bandwidth at batch ≥ 8. With `--tune` it also times the
# distance kernel alone per level over a grid of launch plans, against `plan()`'s choice. Results committed under
# `benchmarks/results/`:

# %%
for r in report.gpu_results():
    display(Markdown(f"**{r['device']}** (torch {r['torch']}, Triton {r.get('triton')}), copy bandwidth "
                     f"{r.get('copy_bandwidth_GBps', float('nan')):.0f} GB/s"), pd.DataFrame(r["rows"]))
    if r.get("tuning"):
        display(Markdown("Distance kernel alone, per level: `plan()` against the best launch plan of the grid"),
                pd.DataFrame(r["tuning"]))
if not report.gpu_results():
    display(Markdown("**No GPU figures exist yet.** The sessions that built this book had no GPU; the kernel's "
                     "arithmetic above was checked in Triton's interpreter and its compiled form in section 4, but "
                     "its speed on an H100 is still to be measured with `python benchmarks/bench_cosine_map.py "
                     "--tune` (the JSON it writes is picked up here)."))

# %% [markdown]
# Everything above that needs a GPU runs in one script, `benchmarks/gpu_checks.sh`: the kernel tests compiled on the
# GPU, the benchmark, and every method's `paper` profile trained and evaluated on CUDA at one step. What it found,
# read from the logs it writes to `benchmarks/results/` (the GPU and the commit it ran on in `gpu.txt`) once a
# session with a GPU commits them:

# %%
checks = report.gpu_checks()
glue("kernels_find_gpu", Markdown(report.gpu_sentence(report.gpu_results(), checks)), display=False)
checks

# %% [markdown]
# ## Conclusion
#
# In this build, {glue:md}`kernels_find_correctness` On speed, {glue:md}`kernels_find_cpu` `rdlib`'s path — the
# Triton kernel on a CUDA GPU, the matrix path elsewhere — is what the later chapters use to compute RD's anomaly
# map. On a GPU: {glue:md}`kernels_find_gpu`

# %% [markdown]
# ## Environment

# %% tags=["nbval-ignore-output"]
from rdlib.utils import environment_footer

display(Markdown(environment_footer()))
