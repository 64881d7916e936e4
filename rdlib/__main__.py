"""Command line: ``python -m rdlib {data,train,evaluate,predict} ...``

    python -m rdlib data generate [--size 256]                       # the embedded benchmark (prints its root)
    python -m rdlib data verify <root> [--format mvtec|mpdd|btad|visa]
    python -m rdlib train    --method rd --data <root|embedded> --category <c> [--backbone ...] [--profile book]
    python -m rdlib evaluate --method rd --data <root|embedded> --category <c> [same options] [--out DIR]
    python -m rdlib predict  --run <run dir> --images a.png b.png [--out DIR]

``train`` stores the run under runs/<method>/<category>/<config hash>/ (config, checkpoint, metrics JSON) and reuses a
finished run with the same configuration; ``evaluate`` re-evaluates that run and writes metrics JSON and anomaly-map
overlays (PNG); ``predict`` scores new images with a trained run.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_USAGE = 2


class CLIError(Exception):
    """A bad argument or missing input; printed without a traceback."""


def _add_run_args(p: argparse.ArgumentParser) -> None:
    from rdlib.methods import METHODS

    p.add_argument("--method", default="rd", choices=sorted(METHODS))
    p.add_argument("--data", required=True, help="dataset root, or 'embedded' for the embedded benchmark")
    p.add_argument("--category", required=True)
    p.add_argument("--format", default=None, choices=["mvtec", "mpdd", "btad", "visa"])
    p.add_argument("--profile", default="book", help="hyper-parameter profile: ci | book | paper")
    p.add_argument("--backbone", default=None, help="teacher (default: the profile's)")
    p.add_argument("--weights", default="imagenet", help="imagenet | random | path to a .pth file")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--loss", default="flatten", choices=["flatten", "pixel"])
    p.add_argument("--bottleneck", default="oce+mff", choices=["oce+mff", "oce", "pre"])
    p.add_argument("--selection", default="last", choices=["last", "best_on_test"],
                   help="checkpoint rule; best_on_test selects on the TEST set (URD/AAND/RD++ practice)")
    p.add_argument("--runs-dir", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--progress", action="store_true")


def _spec(args):
    from rdlib.data import generate_embedded
    from rdlib.data.embedded import EmbeddedConfig
    from rdlib.methods import PROFILES
    from rdlib.runs import RunSpec

    profiles = PROFILES[args.method]
    if args.profile not in profiles:
        raise CLIError(f"--profile {args.profile!r}: choose from {sorted(profiles)}")
    prof = profiles[args.profile]
    size = args.image_size or prof["image_size"]
    if args.data == "embedded":
        root = generate_embedded(cfg=EmbeddedConfig(size=size))
    else:
        root = Path(args.data)
        if not root.is_dir():
            raise CLIError(f"--data {root}: no such folder. Pass a dataset root (MVTec layout) or 'embedded'.")
    if not (root / args.category).is_dir() and args.format != "visa":
        from rdlib.data import list_categories

        raise CLIError(f"--category {args.category!r}: not found under {root}. Available: {list_categories(root, args.format)}")
    options = dict(teacher=args.backbone or prof["teacher"], weights=args.weights, image_size=size,
                   epochs=args.epochs if args.epochs is not None else prof["epochs"], loss=args.loss,
                   bottleneck=args.bottleneck, lr=args.lr or prof["lr"], betas=tuple(prof["betas"]))
    if options["epochs"] < 1:
        raise CLIError(f"--epochs must be >= 1, got {options['epochs']}")
    fit = dict(batch_size=args.batch_size or prof["batch_size"], seed=args.seed if args.seed is not None else prof["seed"],
               selection=args.selection, eval_every=1 if args.selection == "best_on_test" else 0)
    return RunSpec(str(root), args.category, args.method, options, fit, args.format)


def _write_overlays(method, dataset, res, out: Path, n: int) -> list[str]:
    import numpy as np

    from rdlib.viz import save_overlay

    order = np.argsort(-res.scores)[:n]
    vmin, vmax = float(res.maps.min()), float(res.maps.max())
    paths = []
    for rank, i in enumerate(order):
        p = out / f"{rank:02d}_{Path(dataset.table.image_path.iloc[i]).parent.name}_{Path(dataset.table.image_path.iloc[i]).stem}.png"
        save_overlay(p, dataset[int(i)]["image"], res.maps[i].astype(np.float32), res.masks[i], vmin, vmax,
                     title=f"score {res.scores[i]:.4f}")
        paths.append(str(p))
    return paths


def cmd_train(args) -> int:
    from rdlib.runs import get_or_train

    spec = _spec(args)
    run = get_or_train(spec, args.runs_dir, device=args.device, progress=args.progress)
    print(f"run: {run.dir}")
    print(json.dumps({k: round(v, 2) for k, v in run.metrics.items()}, indent=2))
    return 0


def cmd_evaluate(args) -> int:
    from rdlib.data import AnomalyDataset, read_dataset
    from rdlib.runs import load_run
    from rdlib.training import evaluate
    from rdlib.utils import atomic_write_json

    spec = _spec(args)
    d = spec.dir(args.runs_dir)
    if not (d / "metrics.json").exists():
        raise CLIError(f"no finished run for this configuration ({d}). Run 'python -m rdlib train' with the same options first.")
    run = load_run(spec, args.runs_dir)
    method = run.load_method(args.device)
    table = read_dataset(spec.data_root, spec.category, spec.data_format)
    test = AnomalyDataset(table[table.split == "test"], spec.options["image_size"])
    res = evaluate(method, test, device=args.device)
    out = Path(args.out) if args.out else d / "evaluation"
    overlays = _write_overlays(method, test, res, out / "overlays", args.overlays)
    atomic_write_json(out / "metrics.json", {"metrics": res.metrics, "run": str(d), "category": spec.category,
                                             "seconds_per_image": res.seconds_per_image, "overlays": overlays})
    print(json.dumps({k: round(v, 2) for k, v in res.metrics.items()}, indent=2))
    print(f"wrote {out / 'metrics.json'} and {len(overlays)} overlays in {out / 'overlays'}")
    return 0


def cmd_predict(args) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from rdlib.data.readers import load_image
    from rdlib.runs import load_run
    from rdlib.utils import atomic_write_json
    from rdlib.viz import save_overlay

    d = Path(args.run)
    try:
        run = load_run(d)
    except FileNotFoundError as e:
        raise CLIError(f"--run {e}") from None
    spec, method = run.spec, run.load_method(args.device)
    size = spec.options["image_size"]
    out = Path(args.out or d / "predictions")
    scores = {}
    for path in args.images:
        if not Path(path).is_file():
            raise CLIError(f"--images {path}: no such file")
        img = load_image(path).resize((size, size), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        amap, score = method.predict(x.to(next(method.parameters()).device))
        scores[str(path)] = float(score[0])
        save_overlay(out / f"{Path(path).stem}.png", x[0], amap[0, 0].cpu().numpy(), title=f"score {scores[str(path)]:.4f}")
    atomic_write_json(out / "scores.json", scores)
    for p, s in scores.items():
        print(f"{s:.5f}  {p}")
    print(f"wrote {out / 'scores.json'} and overlays in {out}")
    return 0


def cmd_data(args) -> int:
    from rdlib.data import DataError, verify
    from rdlib.data.embedded import EmbeddedConfig, generate_embedded

    if args.data_cmd == "generate":
        cfg = EmbeddedConfig(size=args.size, n_train=args.n_train, n_test_good=args.n_test_good,
                             n_test_per_defect=args.n_test_per_defect)
        print(generate_embedded(args.out, cfg))
        return 0
    try:
        counts = verify(args.root, args.format)
    except DataError as e:
        print(f"data verify failed: {e}", file=sys.stderr)
        return 1
    table = counts.pivot_table(index=["category", "split"], columns="defect", values="images", aggfunc="sum", fill_value=0).astype(int)
    print(table.to_string())
    print(f"OK: {counts.category.nunique()} categories, {int(counts.images.sum())} images")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m rdlib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    data = sub.add_parser("data", help="generate or verify datasets")
    dsub = data.add_subparsers(dest="data_cmd", required=True)
    ver = dsub.add_parser("verify", help="check a dataset tree and print counts")
    ver.add_argument("root")
    ver.add_argument("--format", default=None, choices=["mvtec", "mpdd", "btad", "visa"])
    gen = dsub.add_parser("generate", help="generate the embedded benchmark")
    gen.add_argument("--out", default=None)
    gen.add_argument("--size", type=int, default=256)
    gen.add_argument("--n-train", type=int, default=80)
    gen.add_argument("--n-test-good", type=int, default=20)
    gen.add_argument("--n-test-per-defect", type=int, default=8)
    for name, helptext in (("train", "train (or reuse) a run"), ("evaluate", "evaluate a trained run, write metrics + overlays")):
        p = sub.add_parser(name, help=helptext)
        _add_run_args(p)
        if name == "evaluate":
            p.add_argument("--out", default=None)
            p.add_argument("--overlays", type=int, default=8, help="number of overlay PNGs (highest scores)")
    pr = sub.add_parser("predict", help="score images with a trained run")
    pr.add_argument("--run", required=True)
    pr.add_argument("--images", nargs="+", required=True)
    pr.add_argument("--out", default=None)
    pr.add_argument("--device", default=None)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from rdlib.data import DataError
    from rdlib.models import TeacherWeightsError

    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "data": cmd_data}[args.cmd](args)
    except (CLIError, DataError, TeacherWeightsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
