"""Benchmark: the cosine anomaly map, PyTorch reference vs rdlib's Triton path.

    python benchmarks/bench_cosine_map.py [--batches 1 8 32] [--dtypes float32 float16 bfloat16] [--tune] [--out DIR]
    python benchmarks/bench_cosine_map.py --smoke      # CPU, tiny shapes, kernel in Triton's interpreter: checks the script

On a CUDA GPU, with CUDA events (warm-up, median of many runs), for WideResNet50-2 and EfficientNet-Lite0 level shapes:

* ``reference``: what one writes in PyTorch, as the official RD code does: per level ``1 - F.cosine_similarity``,
  ``F.interpolate`` (bilinear, align_corners=True) to 256², sum over levels.
* ``rdlib``: the Triton distance kernel per level + upsample-and-sum as matrix products (no blur, so both compute
  the same map), i.e. ``AnomalyMap``'s GPU path.

It reports the speed-up and the achieved bandwidth (both feature tensors read once + the 256² output written once,
over the time) next to the device's measured copy bandwidth. ``--tune`` also times the distance kernel alone on
each level shape for a grid of launch plans (block sizes, channel split, warps) against
``rdlib.kernels.cosine_map.plan``'s choice. On a CPU it times the reference only (the kernel needs CUDA).
Writes JSON to ``benchmarks/results/cosine_map_<device>.json``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

SHAPES = {
    "wide_resnet50_2": [(256, 64, 64), (512, 32, 32), (1024, 16, 16)],
    "efficientnet_lite0": [(24, 64, 64), (40, 32, 32), (112, 16, 16)],
}
OUT_SIZE = (256, 256)


def reference_map(teacher, student, out_size=OUT_SIZE):
    """The plain PyTorch anomaly map (no blur): Σ_k interpolate(1 − cos(f_T^k, f_S^k))."""
    total = None
    for t, s in zip(teacher, student):
        m = 1 - F.cosine_similarity(t, s, dim=1, eps=1e-8).unsqueeze(1)
        m = F.interpolate(m.float(), size=out_size, mode="bilinear", align_corners=True)
        total = m if total is None else total + m
    return total


def feature_bytes(levels, batch, dtype, out_size=OUT_SIZE) -> int:
    elem = torch.tensor([], dtype=dtype).element_size()
    return 2 * batch * sum(c * h * w for c, h, w in levels) * elem + batch * out_size[0] * out_size[1] * 4


def time_cuda(fn, warmup=10, reps=100) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


def time_cpu(fn, warmup=2, reps=10) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _timing import median_seconds

    return median_seconds(fn, warmup, reps)


def copy_bandwidth() -> float:
    x = torch.empty(256 * 1024 * 1024, dtype=torch.float32, device="cuda")   # 1 GiB
    y = torch.empty_like(x)
    t = time_cuda(lambda: y.copy_(x), warmup=5, reps=30)
    return 2 * x.numel() * 4 / t                                             # read + write


def tuning_grid(C: int, HW: int):
    """Launch plans to try on one level: tiles of 1–4 K elements, channel splits 1–32, 2–8 warps."""
    from rdlib.kernels.cosine_map import LaunchPlan

    for block_hw, tile, split, warps in itertools.product((32, 64, 128, 256), (1024, 2048, 4096), (1, 2, 4, 8, 16, 32),
                                                          (2, 4, 8)):
        block_c = tile // block_hw
        if block_hw > 2 * HW or block_c > 2 * C or split > max(1, C // block_c):
            continue
        yield LaunchPlan(block_c, block_hw, split, warps)


def tune_level(c, h, w, batch, dtype, device, timer, smoke=False):
    """Time the distance kernel alone on one level: plan()'s choice, the best of the grid, and 1 − cos in PyTorch."""
    from rdlib.kernels.cosine_map import cosine_distance_triton, plan

    g = torch.Generator(device=device).manual_seed(0)
    t = torch.randn(batch, c, h, w, device=device, generator=g).to(dtype)
    s = torch.randn(batch, c, h, w, device=device, generator=g).to(dtype)
    nbytes = 2 * t.numel() * t.element_size() + batch * h * w * 4
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else None
    chosen = plan(batch, c, h * w, sm_count=sms)
    grid = list(tuning_grid(c, h * w))[: 3 if smoke else None]
    timings = {}
    for lp in dict.fromkeys([chosen, *grid]):
        timings[lp] = timer(lambda: cosine_distance_triton(t, s, launch=lp))
    best = min(timings, key=timings.get)
    torch_s = timer(lambda: 1 - F.cosine_similarity(t, s, dim=1, eps=1e-8))
    row = {"level": [c, h, w], "batch": batch, "dtype": str(dtype).replace("torch.", ""), "bytes": nbytes,
           "plan": vars(chosen), "plan_s": timings[chosen], "best": vars(best), "best_s": timings[best],
           "torch_cosine_s": torch_s, "configs_tried": len(timings)}
    print(f"  level {c}x{h}x{w} B={batch:<3}{row['dtype']:>9}: plan {timings[chosen] * 1e6:8.1f} us "
          f"({nbytes / timings[chosen] / 1e9:6.0f} GB/s), best {timings[best] * 1e6:8.1f} us {vars(best)}, "
          f"torch 1-cos {torch_s * 1e6:8.1f} us")
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float16", "bfloat16"])
    ap.add_argument("--tune", action="store_true", help="also sweep launch plans of the distance kernel per level")
    ap.add_argument("--tune-batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--smoke", action="store_true",
                    help="CPU check of this script: tiny shapes, 1 run each, kernel in Triton's interpreter")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"            # before rdlib.kernels.cosine_map is imported
    from rdlib.anomaly_map import upsample_sum_blur
    from rdlib.kernels import cosine_distance_triton, triton_supported

    cuda = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda" if cuda else "cpu")
    dev_name = torch.cuda.get_device_name(0) if cuda else f"CPU {platform.processor() or platform.machine()}"
    shapes = SHAPES
    out_size = OUT_SIZE
    if args.smoke:
        shapes = {name: [(c, h // 8, w // 8) for c, h, w in levels] for name, levels in SHAPES.items()}
        out_size = (32, 32)
        args.batches, args.tune_batches, args.dtypes = args.batches[:1], args.tune_batches[:1], args.dtypes[:2]
        dev_name += " (smoke)"
    timer = time_cuda if cuda else (lambda fn: time_cpu(fn, warmup=0, reps=1)) if args.smoke else time_cpu
    result = {"device": dev_name, "torch": torch.__version__, "out_size": out_size, "rows": [], "tuning": []}
    if cuda:
        import triton

        result["triton"] = triton.__version__
        result["copy_bandwidth_GBps"] = copy_bandwidth() / 1e9
        print(f"{dev_name}: measured copy bandwidth {result['copy_bandwidth_GBps']:.0f} GB/s")
    elif not args.smoke:
        print("no CUDA device: timing the PyTorch reference only (the Triton kernel needs a CUDA GPU)")

    def rdlib_map(t, s):
        return upsample_sum_blur([cosine_distance_triton(a, b) for a, b in zip(t, s)], out_size, sigma=0)

    print(f"{'shapes':<20}{'B':>4}{'dtype':>10}{'ref ms':>10}{'rdlib ms':>10}{'speed-up':>10}{'GB/s':>8}{'% copy':>8}")
    for name, levels in shapes.items():
        for batch in args.batches:
            for dt in args.dtypes:
                dtype = getattr(torch, dt)
                g = torch.Generator(device=device).manual_seed(0)
                t = [torch.randn(batch, c, h, w, device=device, generator=g).to(dtype) for c, h, w in levels]
                s = [torch.randn(batch, c, h, w, device=device, generator=g).to(dtype) for c, h, w in levels]
                ref = timer(lambda: reference_map(t, s, out_size))
                row = {"shapes": name, "batch": batch, "dtype": dt, "reference_s": ref,
                       "bytes": feature_bytes(levels, batch, dtype, out_size)}
                ok, why = triton_supported(t[0], allow_interpreter=args.smoke)
                if ok:
                    ker = timer(lambda: rdlib_map(t, s))
                    err = (rdlib_map(t, s) - reference_map(t, s, out_size)).abs().max().item()
                    row.update(kernel_s=ker, speedup=ref / ker, kernel_GBps=row["bytes"] / ker / 1e9, max_abs_err=err)
                    if cuda:
                        row["pct_copy_bw"] = 100 * row["bytes"] / ker / (result["copy_bandwidth_GBps"] * 1e9)
                else:
                    row["kernel_skipped"] = why
                result["rows"].append(row)
                k = row.get("kernel_s")
                print(f"{name:<20}{batch:>4}{dt:>10}{ref * 1e3:>10.3f}"
                      + (f"{k * 1e3:>10.3f}{row['speedup']:>10.2f}{row['kernel_GBps']:>8.0f}"
                         f"{row.get('pct_copy_bw', float('nan')):>8.0f}" if k else f"   (kernel skipped: {why})"))
    if args.tune:
        if not (cuda or args.smoke):
            print("--tune needs a CUDA GPU; skipped")
        else:
            print("tuning the distance kernel per level (plan = rdlib's heuristic, best = fastest of the grid):")
            tune_timer = (lambda fn: time_cuda(fn, warmup=3, reps=20)) if cuda else timer
            for (name, levels), batch, dt in itertools.product(shapes.items(), args.tune_batches, args.dtypes):
                dtype = getattr(torch, dt)
                if triton_supported(torch.empty(1, device=device, dtype=dtype), allow_interpreter=args.smoke)[0]:
                    for c, h, w in levels:
                        result["tuning"].append({"shapes": name, **tune_level(c, h, w, batch, dtype, device,
                                                                               tune_timer, args.smoke)})
    tag = "".join(ch if ch.isalnum() else "_" for ch in dev_name).strip("_").lower()
    out = Path(args.out) / f"cosine_map_{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
