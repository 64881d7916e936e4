"""Benchmark: RD inference latency at 256², split into network forward and anomaly map + scoring.

    python benchmarks/bench_inference.py [--backbones ...] [--batches 1 16] [--device cpu]

Goal: map + scoring ≤ 2 % of the total. Teachers whose ImageNet weights are not installed run with random weights
(timing does not depend on the weights). Prints a table and writes benchmarks/results/inference_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from rdlib.methods import get_model
from rdlib.models import TEACHERS, TeacherWeightsError


def timed(fn, device, reps):
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", nargs="+", default=list(TEACHERS))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    print(f"{'backbone':<20}{'B':>4}{'network ms':>12}{'map+score ms':>14}{'share':>8}")
    for name in args.backbones:
        try:
            model = get_model("rd", teacher=name, weights="imagenet")
            weights = "imagenet"
        except TeacherWeightsError:
            model, weights = get_model("rd", teacher=name, weights="random"), "random (timing only)"
        model = model.to(device).eval()
        for batch in args.batches:
            x = torch.rand(batch, 3, 256, 256, device=device)
            def features():                                                  # E(x) and D(OCBE(E(x))): the network
                t = model.encode(x)
                return t, model.student(t)

            with torch.no_grad():
                model.anomaly_map(*features())                               # warm-up
                net, (t, s) = timed(features, device, args.reps)
                amap, _ = timed(lambda: model.anomaly_map(t, s), device, args.reps * 4)
            share = amap / (net + amap)
            rows.append({"backbone": name, "weights": weights, "batch": batch, "network_s": net, "map_score_s": amap,
                         "map_share": share})
            print(f"{name:<20}{batch:>4}{net * 1e3:>12.1f}{amap * 1e3:>14.2f}{100 * share:>7.2f}%")
    dev = torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu-{platform.machine()}-{torch.get_num_threads()}threads"
    out = Path(__file__).parent / "results" / f"inference_{''.join(c if c.isalnum() else '_' for c in dev).lower()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": dev, "torch": torch.__version__, "rows": rows}, indent=2) + "\n")
    print(f"goal: map + scoring <= 2 % of the total; wrote {out}")


if __name__ == "__main__":
    main()
