"""What a GPU user needs to know before starting: per method and GPU profile (`paper`, `full`), computed.

    python benchmarks/gpu_requirements.py            # ~minutes on a 2-core CPU; writes benchmarks/results/gpu_requirements.{csv,md}
    python benchmarks/gpu_requirements.py --readme   # ... and copies the table into README.md between its markers

For each method and profile, one training step at the profile's batch size and image size, the teacher at random
weights (no download), measured on this machine's CPU by ``rdlib.cost.training_cost``: parameters, training GFLOPs
per image (forward + backward), and the training memory (the trained state — weights, gradients, Adam's moments — plus
the peak a step allocates, from the CPU profiler's allocation events). A GPU adds its CUDA context and cuDNN
workspaces (about 0.5 GB on a T4), so "fits a 15 GB T4" asks for that margin. The GPU time of one category's run is
an **estimate from FLOPs**, not a measurement: the run's training images (steps × batch, or epochs × the training-set
size) × GFLOPs per image at an assumed 40 % of each card's dense FP32 peak (T4 8.1, L4 30.3, A100 19.5 TFLOPS, from
NVIDIA's datasheets); the A100 runs convolutions in TF32 by default and can be faster. The `paper` profile counts
MVTec AD's mean training set (3,629 images / 15 categories), `full` the embedded benchmark's 80 images.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GPUS = {"T4": 8.1, "L4": 30.3, "A100": 19.5}      # dense FP32 TFLOPS (NVIDIA datasheets)
UTILISATION = 0.40                                # assumed fraction of that peak a training step reaches
CONTEXT_GB, T4_GB = 0.5, 15.0                     # CUDA context + workspaces; a T4's usable memory
TRAIN_IMAGES = {"paper": 3629 / 15, "full": 80, "book": 80, "ci": 80}   # MVTec AD's mean per category; embedded
PROFILES = ("paper", "full")
START, END = "<!-- gpu-requirements:start -->", "<!-- gpu-requirements:end -->"


def run_images(options: dict, stages: pd.DataFrame, n_train: float) -> pd.Series:
    """Training images one run processes, per stage: steps × batch for a step budget, epochs × training set."""
    from rdlib.methods.base import BUDGET_OPTIONS

    budgets = [k for k in BUDGET_OPTIONS if options.get(k)]
    out = {}
    for stage, key in zip(stages.index, budgets):
        out[stage] = options[key] * (stages.loc[stage, "batch"] if key.endswith("steps") else n_train)
    return pd.Series(out, dtype=float)


def requirements(profiles=PROFILES, methods=None) -> pd.DataFrame:
    import torch

    from rdlib.cost import training_cost
    from rdlib.data import EmbeddedConfig, generate_embedded
    from rdlib.methods import create_method, list_methods, method_profile

    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    for profile in profiles:
        for m in methods or list_methods():
            opts = method_profile(m, profile)["options"]
            batch = method_profile(m, profile)["fit"].get("batch_size", 16)
            root = generate_embedded(cfg=EmbeddedConfig(size=int(opts["image_size"]), n_train=max(16, batch),
                                                        n_test_good=2, n_test_per_defect=1))
            t0 = time.perf_counter()
            stages = training_cost(m, profile, root, "brick")
            if stages["training GFLOPs / image"].isna().all():      # training-free: no optimizer step to measure
                model = create_method(m, **{**opts, "weights": "random"})
                rows.append({"method": m, "profile": profile, "teacher": opts.get("teacher"),
                             "size": f"{opts['image_size']}²", "batch": batch,
                             "params (M)": sum(p.numel() for p in model.parameters()) / 1e6, "trained (M)": 0.0,
                             "training GFLOPs / image": "training-free", "training memory GB (CPU-measured)": "—",
                             "fits a 15 GB T4": "yes", **{f"est. min / run, {gpu}": "—" for gpu in GPUS}})
                continue
            images = run_images(opts, stages, TRAIN_IMAGES[profile])
            gflop_run = float((images * stages["training GFLOPs / image"]).sum()) if len(images) else 0.0
            memory_gb = float((stages["state MB"] + stages["step peak MB"].fillna(0)).max()) / 1e3
            row = {"method": m, "profile": profile, "teacher": opts.get("teacher"), "size": f"{opts['image_size']}²",
                   "batch": batch, "params (M)": float(stages["params held (M)"].max()),
                   "trained (M)": float(stages["params trained (M)"].max()),
                   "training GFLOPs / image": float(stages["training GFLOPs / image"].max()),
                   "training memory GB (CPU-measured)": memory_gb,
                   "fits a 15 GB T4": "yes" if memory_gb + CONTEXT_GB <= T4_GB else "no"}
            for gpu, tflops in GPUS.items():
                row[f"est. min / run, {gpu}"] = gflop_run / (UTILISATION * tflops * 1e3) / 60
            rows.append(row)
            print(f"{m} {profile}: {time.perf_counter() - t0:.0f} s", flush=True)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, commit: str, machine: str) -> str:
    shown = table.copy()
    for c in shown.columns:
        shown[c] = shown[c].map(lambda v: (f"{v:.1f}" if v >= 1 else f"{v:.2f}") if isinstance(v, float) else v)
    head = (f"Computed by `benchmarks/gpu_requirements.py` at commit `{commit}` on {machine}: one training step per "
            "method at each GPU profile's batch size and image size, teacher at random weights, measured on the CPU "
            f"(memory from the CPU profiler, not a GPU's allocator; a GPU adds ~{CONTEXT_GB:g} GB of context). The "
            f"minutes per run are **estimates from FLOPs** at {UTILISATION:.0%} of each card's FP32 peak, for one "
            "category: `paper` on MVTec AD's mean training set, `full` on the embedded benchmark.\n\n")
    return head + shown.to_markdown(index=False, disable_numparse=True) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--readme", action="store_true", help="copy the table into README.md between its markers")
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--profiles", nargs="*", default=list(PROFILES), help="GPU profiles (others only to test the script)")
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip() or "unknown"
    import torch

    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    table = requirements(args.profiles, args.methods)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "gpu_requirements.csv", index=False)
    text = markdown(table, commit, machine)
    (out / "gpu_requirements.md").write_text(text)
    if args.readme:
        readme = (ROOT / "README.md").read_text()
        a, b = readme.index(START) + len(START), readme.index(END)
        (ROOT / "README.md").write_text(readme[:a] + "\n" + text + readme[b:])
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
