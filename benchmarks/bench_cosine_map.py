"""Benchmark: fused cosine anomaly map, PyTorch reference vs Triton kernel.

    python benchmarks/bench_cosine_map.py [--batches 1 8 32] [--dtypes float32 float16 bfloat16] [--out DIR]

On a CUDA GPU: CUDA-event timings (warm-up, median of many runs) for the reference
(`1 - cos` per level + bilinear upsampling + sum, rdlib.anomaly_map.fused_map_reference) and rdlib's path
(Triton distance kernel per level + upsample-and-sum as matrix products, no blur, so both compute the same map),
the achieved bandwidth (both feature tensors read once + the output written once, over the time) next to the
device's measured copy bandwidth, and the speed-up. On a CPU: the reference only (the kernel needs CUDA).
Writes JSON to benchmarks/results/cosine_map_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from rdlib.anomaly_map import fused_map_reference, upsample_sum_blur
from rdlib.kernels import triton_supported

SHAPES = {
    "wide_resnet50_2": [(256, 64, 64), (512, 32, 32), (1024, 16, 16)],
    "efficientnet_lite0": [(24, 64, 64), (40, 32, 32), (112, 16, 16)],
}
OUT_SIZE = (256, 256)


def feature_bytes(levels, batch, dtype) -> int:
    elem = torch.tensor([], dtype=dtype).element_size()
    return 2 * batch * sum(c * h * w for c, h, w in levels) * elem + batch * OUT_SIZE[0] * OUT_SIZE[1] * 4


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
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth() -> float:
    x = torch.empty(256 * 1024 * 1024, dtype=torch.float32, device="cuda")   # 1 GiB
    y = torch.empty_like(x)
    t = time_cuda(lambda: y.copy_(x), warmup=5, reps=30)
    return 2 * x.numel() * 4 / t                                             # read + write


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float16", "bfloat16"])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dev_name = torch.cuda.get_device_name(0) if cuda else f"CPU {platform.processor() or platform.machine()}"
    result = {"device": dev_name, "torch": torch.__version__, "out_size": OUT_SIZE, "rows": []}
    if cuda:
        import triton

        result["triton"] = triton.__version__
        result["copy_bandwidth_GBps"] = copy_bandwidth() / 1e9
        print(f"{dev_name}: measured copy bandwidth {result['copy_bandwidth_GBps']:.0f} GB/s")
    else:
        print("no CUDA device: timing the PyTorch reference only (the Triton kernel needs a CUDA GPU)")
    from rdlib.kernels import cosine_distance_triton

    def fused_cosine_map_triton(t, s, out_size):
        return upsample_sum_blur([cosine_distance_triton(a, b) for a, b in zip(t, s)], out_size, sigma=0)

    print(f"{'shapes':<20}{'B':>4}{'dtype':>10}{'ref ms':>10}{'kernel ms':>11}{'speed-up':>10}{'GB/s':>8}{'% copy':>8}")
    for name, levels in SHAPES.items():
        for batch in args.batches:
            for dt in args.dtypes:
                dtype = getattr(torch, dt)
                g = torch.Generator(device=device).manual_seed(0)
                t = [torch.randn(batch, c, h, w, device=device, generator=g).to(dtype) for c, h, w in levels]
                s = [torch.randn(batch, c, h, w, device=device, generator=g).to(dtype) for c, h, w in levels]
                timer = time_cuda if cuda else time_cpu
                ref = timer(lambda: fused_map_reference(t, s, OUT_SIZE))
                row = {"shapes": name, "batch": batch, "dtype": dt, "reference_s": ref,
                       "bytes": feature_bytes(levels, batch, dtype)}
                ok, why = triton_supported(t[0])
                if ok:
                    ker = timer(lambda: fused_cosine_map_triton(t, s, OUT_SIZE))
                    err = (fused_cosine_map_triton(t, s, OUT_SIZE) - fused_map_reference(t, s, OUT_SIZE)).abs().max().item()
                    row.update(kernel_s=ker, speedup=ref / ker, kernel_GBps=row["bytes"] / ker / 1e9, max_abs_err=err,
                               pct_copy_bw=100 * row["bytes"] / ker / (result["copy_bandwidth_GBps"] * 1e9))
                else:
                    row["kernel_skipped"] = why
                result["rows"].append(row)
                k = row.get("kernel_s")
                print(f"{name:<20}{batch:>4}{dt:>10}{ref * 1e3:>10.3f}"
                      + (f"{k * 1e3:>11.3f}{row['speedup']:>10.2f}{row['kernel_GBps']:>8.0f}{row['pct_copy_bw']:>8.0f}" if k else "   (kernel skipped)"))
    tag = "".join(ch if ch.isalnum() else "_" for ch in dev_name).strip("_").lower()
    out = Path(args.out) / f"cosine_map_{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
