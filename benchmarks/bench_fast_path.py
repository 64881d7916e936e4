"""Benchmark: rdlib's RD inference (plain, fast path, fast path + torch.compile) against anomalib 2.7.0's RD, on the
same random WideResNet50-2 teacher, batch 1, 256², interleaved in one process.

    python benchmarks/bench_fast_path.py [--threads 2] [--reps 15] [--no-compile]

Needs anomalib (``pip install 'rdlib[bench]'``: a benchmark-only dependency). Goal: the fast path at ≤ 0.8× anomalib's
time while keeping RD's official architecture (its OCBE is wider than anomalib's: 58.9 M parameters and 14.6 GFLOPs
against 39.2 M and 10.4 GFLOPs), with maps equal to rdlib's plain path within 1e-4. Each repetition times every
variant once, in a rotating order; the ratio to anomalib is taken per repetition, and the script prints its median
and a 95 % t-interval of the mean log-ratio. Writes ``benchmarks/results/fast_path_<machine>.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def anomalib_rd(size: int):
    try:
        from anomalib.models.image.reverse_distillation.anomaly_map import AnomalyMapGenerationMode
        from anomalib.models.image.reverse_distillation.torch_model import ReverseDistillationModel
    except ImportError:
        sys.exit("anomalib is not installed: pip install 'rdlib[bench]' (anomalib==2.7.0), then run this again")
    return ReverseDistillationModel(backbone="wide_resnet50_2", input_size=(size, size),
                                    layers=["layer1", "layer2", "layer3"],
                                    anomaly_map_mode=AnomalyMapGenerationMode.ADD, pre_trained=False).eval()


def share_teacher(rd_method, anomalib_model) -> int:
    """Copy anomalib's (random) encoder weights into rdlib's teacher: the same teacher for both; returns how many
    tensors were copied."""
    src = anomalib_model.encoder.feature_extractor.state_dict()
    dst = rd_method.model.teacher.body.state_dict()
    shared = {k: v for k, v in src.items() if k in dst and dst[k].shape == v.shape}
    rd_method.model.teacher.body.load_state_dict(shared, strict=False)
    return len(shared)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant (~45 s to compile)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    from rdlib.cost import flops
    from rdlib.methods import create_method

    torch.manual_seed(0)
    theirs = anomalib_rd(args.size)
    ours = create_method("rd", teacher="wide_resnet50_2", weights="random", image_size=args.size).eval()
    copied = share_teacher(ours, theirs)
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))

    def params(m):
        return sum(p.numel() for p in m.parameters()) / 1e6

    print(f"anomalib RD: {params(theirs):.1f} M parameters, {flops(lambda: theirs(x)) / 1e9:.1f} GFLOPs; "
          f"rdlib RD: {params(ours.model):.1f} M, {flops(lambda: ours.predict(x)) / 1e9:.1f} GFLOPs "
          f"(teacher tensors shared: {copied})")
    with torch.inference_mode():
        plain_map, plain_score = ours.predict(x)
    variants = {"anomalib": lambda: theirs(x), "rdlib plain": lambda: ours.predict(x)}
    fast = {}
    t0 = time.perf_counter()
    fast["rdlib fast"] = __import__("rdlib.inference", fromlist=["x"]).optimize_for_inference(ours, compile=False)
    reports = {"rdlib fast": fast["rdlib fast"].report}
    print(f"fast path built in {time.perf_counter() - t0:.1f} s: {reports['rdlib fast']}")
    if not args.no_compile:
        from rdlib.inference import optimize_for_inference

        t0 = time.perf_counter()
        fast["rdlib fast + compile"] = optimize_for_inference(ours, compile=True)
        reports["rdlib fast + compile"] = fast["rdlib fast + compile"].report
        print(f"fast path + compile built in {time.perf_counter() - t0:.1f} s: {reports['rdlib fast + compile']}")
    errors = {}
    for name, f in fast.items():
        amap, score = f(x)
        errors[name] = max(float((amap - plain_map).abs().max()), float((score - plain_score).abs().max()))
        variants[name] = (lambda f=f: f(x))
    names = list(variants)
    times = {n: [] for n in names}
    with torch.inference_mode():
        for n in names:                                              # warm-up
            variants[n]()
        for rep in range(args.reps):
            for n in names[rep % len(names):] + names[:rep % len(names)]:
                t = time.perf_counter()
                variants[n]()
                times[n].append(time.perf_counter() - t)
    base = np.array(times["anomalib"])
    rows = []
    print(f"\n{'variant':<24}{'median ms':>10}{'× anomalib':>12}{'95 % interval':>18}{'max |Δmap|':>12}")
    from rdlib.stats import t_interval

    for n in names:
        t = np.array(times[n])
        logr = np.log(t / base)
        iv = t_interval(logr)
        lo, hi = (iv.low, iv.high) if n != "anomalib" else (0.0, 0.0)
        ratio = math.exp(float(np.mean(logr)))
        rows.append({"variant": n, "median_ms": 1e3 * statistics.median(t), "ratio": ratio, "ratio_low": math.exp(lo),
                     "ratio_high": math.exp(hi), "max_map_error": errors.get(n)})
        err = f"{errors[n]:.1e}" if n in errors else ""
        print(f"{n:<24}{1e3 * statistics.median(t):>10.1f}{ratio:>12.3f}{f'{math.exp(lo):.3f}–{math.exp(hi):.3f}':>18}{err:>12}")
    machine = f"cpu_{platform.machine()}_{args.threads}threads" if not torch.cuda.is_available() else "cuda"
    out = Path(__file__).parent / "results" / f"fast_path_{machine}.json"
    out.write_text(json.dumps({"torch": torch.__version__, "threads": args.threads, "size": args.size, "reps": args.reps,
                               "rows": rows, "reports": {k: vars(v) for k, v in reports.items()}}, indent=2) + "\n")
    print(f"goal: rdlib fast ≤ 0.8× anomalib with |Δmap| ≤ 1e-4; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
