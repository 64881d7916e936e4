"""Benchmark: anomaly synthesis per preset at 256², against a training step, measured in one run.

For each preset: ms per image through the dataset wrapper (CPU, as data-loading workers run it; foreground masks
are computed once when the dataset is built and are not timed here) and, on a GPU, ms per image of the batched
``synthesize`` on the device. Goal: synthesis is never the bottleneck of a training step, i.e. ≤ 10 % of the step of
the cheapest method that uses it. Those methods (URD, AAND, RD-RE) all run a teacher forward on the synthetic batch
at least, so an RD step *with* its teacher forward (EfficientNet-Lite0, batch 16) is used as the yardstick here.

    python benchmarks/bench_synthesis.py [--size 256] [--images 32] [--smoke]
Writes benchmarks/results/synthesis_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from rdlib.data import EmbeddedConfig, find_texture_source, generate_embedded, load_split
from rdlib.methods import create_method
from rdlib.synthesis import PRESETS, SyntheticAnomalies, get_preset, synthesize
from rdlib.training import set_train_modes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds  # noqa: E402


def per_image_ms(fn, n: int, reps: int = 3) -> float:
    return 1e3 * median_seconds(fn, warmup=1, reps=reps) / n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition (a test runs this)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    size, n = (64, 4) if args.smoke else (args.size, args.images)
    reps = 1 if args.smoke else 3
    root = generate_embedded(cfg=EmbeddedConfig(size=size))
    textures = find_texture_source()
    rows = []
    for name in PRESETS:
        preset = get_preset(name)
        ds = SyntheticAnomalies(load_split(root, "coffee", "train", size), preset,
                                textures if preset.noise == "perlin" else None, "coffee")
        ds.set_epoch(1)
        ms = per_image_ms(lambda: [ds[i] for i in range(n)], n, reps)
        row = {"preset": name, "cpu_item_ms": ms}
        if torch.cuda.is_available():
            imgs = torch.rand(n, 3, size, size, device="cuda")
            tex = torch.rand(n, 3, size, size, device="cuda")

            def on_gpu():
                synthesize(imgs, tex, None, preset, torch.Generator().manual_seed(0))
                torch.cuda.synchronize()

            row["gpu_batch_ms_per_image"] = per_image_ms(on_gpu, n, reps)
        rows.append(row)
    # yardstick: an RD step with its teacher forward, batch 16, on this machine
    method = create_method("rd", image_size=size, weights="imagenet")
    stage = method.stages()[0]
    opts = method.configure_optimizers(stage)
    set_train_modes(method, stage.trains)
    batch = {"image": torch.rand(16, 3, size, size)}
    step_ms = per_image_ms(lambda: method.training_step(batch, opts, stage), 16, reps)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu-{platform.machine()}-{torch.get_num_threads()}threads"
    print(f"texture source: {textures.name}; yardstick RD step (Lite0, batch 16, {size}²): {step_ms:.1f} ms/image")
    print(f"{'preset':<14}{'CPU ms/image':>14}{'share of step':>15}")
    for r in rows:
        r["share_of_step"] = r["cpu_item_ms"] / step_ms
        print(f"{r['preset']:<14}{r['cpu_item_ms']:>14.2f}{100 * r['share_of_step']:>14.1f}%")
    out = Path(args.out) / f"synthesis_{''.join(c if c.isalnum() else '_' for c in device).lower()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": device, "size": size, "images": n, "texture_source": textures.name,
                               "rd_step_ms_per_image": step_ms, "rows": rows, "goal": "share_of_step <= 0.10"},
                              indent=2) + "\n")
    print(f"goal: synthesis <= 10 % of the step; wrote {out}")


if __name__ == "__main__":
    main()
