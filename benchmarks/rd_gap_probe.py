"""Why does RD trail the training-free nearest-neighbour reference on the embedded benchmark? (issue #10)

Trains RD (book profile, EfficientNet-Lite0 teacher) at 128² for a given number of epochs on the given categories,
in one of three variants, and prints the test metrics logged every 20 epochs:

- ``base``: RD as the book runs it;
- ``relu``: the teacher's maps passed through a ReLU before distillation and scoring (the method option
  ``teacher_activation="relu"``, which the book profiles use). Lite0's stage outputs are linear-bottleneck outputs
  (signed, std 5–9), unlike the post-ReLU ResNet maps RD was designed for; ``base`` sets ``teacher_activation="none"``;
- ``wideN``: the student built with Bottleneck blocks (3, 4, 6) and base width N (default 1024) instead of the
  ResNet18 rules (2.2 M + 0.6 M parameters), to test whether the student is too small to fit normal features.

``wideN`` is an experiment, not a method option: it patches the student's architecture table before the model is built.

    python benchmarks/rd_gap_probe.py relu grass,brick,coins [epochs=60] [threads=2]
"""
from __future__ import annotations

import sys
import time

import torch

from rdlib.data import EmbeddedConfig, generate_embedded
from rdlib.methods import create_method
from rdlib.runs import RunSpec, build_datasets
from rdlib.training import FitConfig, fit
from rdlib.utils import seed_everything


def main(variant: str, categories: list[str], epochs: int = 60, threads: int = 2) -> None:
    torch.set_num_threads(threads)
    root = generate_embedded(cfg=EmbeddedConfig(size=128, n_train=80, n_test_good=80, n_test_per_defect=30))
    for cat in categories:
        spec = RunSpec.from_profile("rd", "book", root, cat, options={"image_size": 128, "epochs": epochs})
        train, test = build_datasets(spec)
        seed_everything(111)
        if variant.startswith("wide"):
            import rdlib.models.student as student

            student.RD_ARCHS["efficientnet_lite0"] = student.RDArch("bottleneck", 3, (3, 4, 6), int(variant[4:] or 1024))
        activation = "relu" if variant == "relu" else "none"
        method = create_method("rd", **{**spec.options, "teacher_activation": activation})
        params = sum(p.numel() for m in (method.model.bottleneck, method.model.decoder) for p in m.parameters())
        t0 = time.perf_counter()
        out = fit(method, train, test, FitConfig(batch_size=16, seed=111, eval_every=20, progress=False))
        for h in out["history"]:
            if "test_i_auroc" in h:
                print(f"{variant} {cat} step {h['step']} loss {h['loss']:.3f} I-AUROC {h['test_i_auroc']:.1f} "
                      f"P-AUROC {h['test_p_auroc']:.1f}", flush=True)
        print(f"{variant} {cat}: {params / 1e6:.1f} M student parameters, {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    main(args[0], args[1].split(","), *(int(a) for a in args[2:4]))
