"""Command line: ``python -m rdlib {methods,data,train,evaluate,predict,sweep} ...``

    python -m rdlib methods                                             # methods, their options and profiles
    python -m rdlib data generate [--size 256]                          # the embedded benchmark (prints its root)
    python -m rdlib data verify <root> [--format mvtec|mpdd|btad|visa]
    python -m rdlib train    --method rd --data <root|embedded> --category <c> [--profile book] [-o key=value ...]
    python -m rdlib evaluate --run <run dir> [--out DIR]                 # or the same arguments as train
    python -m rdlib predict  --run <run dir> --images a.png b.png [--out DIR]
    python -m rdlib sweep    --methods rd,rdpp --categories brick,coffee --seeds 0,1,2 [--profile book]
                             [--table runs/sweep-book.csv] [--workers 2 | --address tcp://scheduler:8786]

Method options come from the method's profile (``ci``, ``book``, ``paper``) and ``-o key=value`` overrides them
(values are YAML: ``-o epochs=5 -o levels=[1,2]``); the method validates them. ``train`` stores the run under
runs/<method>/<category>/<config hash>/ and reuses a finished run with the same configuration, so
``train --profile book`` reuses the run the book trained. ``evaluate`` re-evaluates a run and writes metrics JSON and
anomaly-map overlays (PNG); ``predict`` scores new images with a trained run. ``-v`` shows tracebacks.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CLIError(Exception):
    """A bad argument or missing input; printed without a traceback."""


def _parse_option(text: str) -> tuple[str, object]:
    import yaml

    if "=" not in text:
        raise CLIError(f"-o {text!r}: expected KEY=VALUE (e.g. -o epochs=5)")
    k, v = text.split("=", 1)
    try:
        value = yaml.safe_load(v)
    except yaml.YAMLError as e:
        raise CLIError(f"-o {text!r}: value is not valid YAML ({e})") from None
    return k.strip().replace("-", "_"), value


def _add_run_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--method", default="rd", help="a registered method (see 'python -m rdlib methods')")
    p.add_argument("--data", required=required, help="dataset root, or 'embedded' for the embedded benchmark")
    p.add_argument("--category", required=required)
    p.add_argument("--format", default=None, choices=["mvtec", "mpdd", "btad", "visa"])
    p.add_argument("--profile", default="book", help="hyper-parameter profile of the method: ci | book | full | paper")
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="method option overriding the profile (repeatable), e.g. -o teacher=resnet18 -o epochs=5")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=None, help="evaluate on the test set every N epochs/steps")
    p.add_argument("--selection", default=None, choices=["last", "best_on_test"],
                   help="checkpoint rule; best_on_test selects on the TEST set (URD/AAND/RD++ practice)")
    p.add_argument("--selection-metric", default=None, help="metric or sum for best_on_test, e.g. p_auroc+pro_rd")
    p.add_argument("--stage-selection", action="append", default=[], metavar="STAGE=METRIC",
                   help="best-on-TEST selection for an earlier stage (repeatable), e.g. raa=gate_precision (AAND's code)")
    p.add_argument("--runs-dir", default=None)


def _add_machine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:1 (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes (results do not change)")


def _spec(args):
    from rdlib.data import generate_embedded, list_categories
    from rdlib.data.embedded import EmbeddedConfig
    from rdlib.methods import method_class, method_profile
    from rdlib.runs import RunSpec

    method_class(args.method)                       # unknown method → clear error listing the registered ones
    method_profile(args.method, args.profile)       # unknown profile → clear error listing the method's profiles
    options = dict(_parse_option(o) for o in args.option)
    fit = {k: v for k, v in (("seed", args.seed), ("batch_size", args.batch_size), ("eval_every", args.eval_every),
                             ("selection", args.selection), ("selection_metric", args.selection_metric)) if v is not None}
    for item in getattr(args, "stage_selection", []):
        stage, sep, metric = item.partition("=")
        if not sep or not stage or not metric:
            raise CLIError(f"--stage-selection {item!r}: expected STAGE=METRIC, e.g. raa=gate_precision")
        fit.setdefault("stage_selection", {})[stage] = {"selection": "best_on_test", "metric": metric}
    probe = RunSpec.from_profile(args.method, args.profile, "", args.category, options, fit, args.format)
    if args.data == "embedded":
        root = generate_embedded(cfg=EmbeddedConfig(size=probe.data_config().image_size))
    else:
        root = Path(args.data)
        if not root.is_dir():
            raise CLIError(f"--data {root}: no such folder. Pass a dataset root (MVTec layout) or 'embedded'.")
    if args.format != "visa" and not (root / args.category).is_dir():
        raise CLIError(f"--category {args.category!r}: not found under {root}. Available: {list_categories(root, args.format)}")
    return RunSpec.from_profile(args.method, args.profile, str(root), args.category, options, fit, args.format)


def _print_metrics(metrics: dict) -> None:
    from rdlib.metrics import METRICS

    order = [m for m in METRICS if m in metrics] + sorted(set(metrics) - set(METRICS))
    print(json.dumps({k: None if metrics[k] is None else round(float(metrics[k]), 2) for k in order}, indent=2))


def _write_overlays(dataset, res, out: Path, n: int) -> list[str]:
    import numpy as np

    from rdlib.viz import save_overlay

    order = np.argsort(-res.scores)[:n]
    vmin, vmax = float(res.maps.min()), float(res.maps.max())
    paths = []
    for rank, i in enumerate(order):
        src = Path(dataset.table.image_path.iloc[i])
        p = out / f"{rank:02d}_{src.parent.name}_{src.stem}.png"
        save_overlay(p, dataset[int(i)]["image"], res.maps[i].astype(np.float32), res.masks[i], vmin, vmax,
                     title=f"score {res.scores[i]:.4f}")
        paths.append(str(p))
    return paths


def _load_run_arg(path: str):
    from rdlib.runs import load_run

    try:
        return load_run(Path(path))
    except FileNotFoundError as e:
        raise CLIError(f"--run {e}") from None


def cmd_methods(args) -> int:
    from rdlib.methods import list_methods, method_entry

    for name in list_methods():
        e = method_entry(name)
        print(f"{name}: {e.summary}")
        print("  options: " + ", ".join(f"{k}={v!r}" for k, v in e.cls.option_defaults().items()))
        for pname, prof in e.profiles.items():
            print(f"  profile {pname}: options {prof.get('options', {})} fit {prof.get('fit', {})}")
    return 0


def cmd_train(args) -> int:
    from rdlib.runs import get_or_train

    spec = _spec(args)
    run = get_or_train(spec, args.runs_dir, device=args.device, progress=not args.no_progress,
                       retrain=args.retrain, num_workers=args.workers)
    print(f"run: {run.dir}")
    _print_metrics(run.metrics)
    return 0


def _compile_arg(args):
    """--compile: torch.compile the fast path on a CPU too (on CUDA it is tried anyway and kept where it pays)."""
    return True if getattr(args, "compile", False) else "auto"


def cmd_evaluate(args) -> int:
    from rdlib.runs import build_datasets, load_run
    from rdlib.training import evaluate
    from rdlib.utils import atomic_write_json

    if args.run:
        run = _load_run_arg(args.run)
    else:
        if not (args.data and args.category):
            raise CLIError("evaluate needs --run DIR, or --data and --category (with the options used for train)")
        spec = _spec(args)
        d = spec.dir(args.runs_dir)
        if not (d / "metrics.json").exists():
            raise CLIError(f"no finished run for this configuration ({d}). Run 'python -m rdlib train' with the same "
                           "options first, or pass --run DIR.")
        run = load_run(spec, args.runs_dir)
    method = run.load_method(args.device, compile=_compile_arg(args))
    _, test = build_datasets(run.spec)
    res = evaluate(method, test, device=args.device)
    out = Path(args.out) if args.out else run.dir / "evaluation"
    overlays = _write_overlays(test, res, out / "overlays", args.overlays)
    atomic_write_json(out / "metrics.json", {"metrics": res.metrics, "run": str(run.dir), "category": run.spec.category,
                                             "seconds_per_image": res.seconds_per_image, "overlays": overlays,
                                             "notes": res.notes})
    _print_metrics(res.metrics)
    print(f"wrote {out / 'metrics.json'} and {len(overlays)} overlays in {out / 'overlays'}")
    return 0


def cmd_predict(args) -> int:
    from rdlib.data.dataset import image_tensor
    from rdlib.utils import atomic_write_json
    from rdlib.viz import save_overlay

    run = _load_run_arg(args.run)
    method = run.load_method(args.device, compile=_compile_arg(args))
    dc = run.spec.data_config()
    out = Path(args.out or run.dir / "predictions")
    scores = {}
    for path in args.images:
        if not Path(path).is_file():
            raise CLIError(f"--images {path}: no such file")
        x = image_tensor(path, dc.image_size, dc.image_interpolation)[None]      # as the test sets read it
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
        return EXIT_FAILURE
    table = counts.pivot_table(index=["category", "split"], columns="defect", values="images", aggfunc="sum", fill_value=0).astype(int)
    print(table.to_string())
    empty = counts.attrs.get("empty_masks", [])
    if empty:
        print(f"WARNING: {len(empty)} anomalous image(s) have an empty mask: they count for image-level metrics but "
              "have no region for PRO (left out of its mean, and named when evaluated):", file=sys.stderr)
        for path in empty:
            print(f"  {path}", file=sys.stderr)
    print(f"OK: {counts.category.nunique()} categories, {int(counts.images.sum())} images"
          + (f" ({len(empty)} with an empty mask)" if empty else ""))
    return 0


def cmd_sweep(args) -> int:
    from rdlib.data import list_categories
    from rdlib.runs import default_runs_dir
    from rdlib.sweep import plan, run_sweep

    def items(text: str, what: str) -> list[str]:
        out = [t.strip() for t in text.split(",") if t.strip()]
        if not out:
            raise CLIError(f"--{what} {text!r}: expected a comma-separated list")
        return out

    try:
        seeds = [int(s) for s in items(args.seeds, "seeds")]
    except ValueError:
        raise CLIError(f"--seeds {args.seeds!r}: expected integers, e.g. 0,1,2") from None
    options = dict(_parse_option(o) for o in args.option)
    categories = items(args.categories, "categories")
    if categories == ["all"]:
        if args.data == "embedded":
            from rdlib.data.embedded import EmbeddedConfig

            categories = list(EmbeddedConfig().categories)
        else:
            categories = list_categories(args.data, args.format)
    try:
        tasks = plan(items(args.methods, "methods"), categories, seeds, args.profile, args.data, options, args.format)
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(str(e)) from None
    table = args.table or str(Path(args.runs_dir or default_runs_dir()) / f"sweep-{args.profile}.csv")
    print(f"sweep: {len(tasks)} task(s) on " + (f"the cluster at {args.address}" if args.address else
                                                f"a local cluster of {args.workers} worker(s)"), flush=True)
    result = run_sweep(tasks, table, args.runs_dir, args.address, args.workers, args.threads,
                       True if args.gpu else None)
    print(result.report())
    return 0 if result.ok else EXIT_FAILURE


def cmd_runs(args) -> int:
    import shutil

    from rdlib.runs import default_runs_dir, stale_runs

    root = Path(args.runs_dir or default_runs_dir())
    stale = stale_runs(root)
    for d, why in stale:
        print(f"{'removed' if args.remove else 'stale'}: {d} ({why})")
        if args.remove:
            shutil.rmtree(d)
    print(f"{len(stale)} stale run folder(s) under {root}" + ("" if args.remove or not stale else
                                                          "; `python -m rdlib runs stale --remove` deletes them"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m rdlib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true", help="log at INFO and show tracebacks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("methods", help="list methods, their options and profiles")
    data = sub.add_parser("data", help="generate or verify datasets")
    dsub = data.add_subparsers(dest="data_cmd", required=True)
    ver = dsub.add_parser("verify", help="check a dataset tree and print counts")
    ver.add_argument("root")
    ver.add_argument("--format", default=None, choices=["mvtec", "mpdd", "btad", "visa"])
    gen = dsub.add_parser("generate", help="generate the embedded benchmark")
    gen.add_argument("--out", default=None)
    gen.add_argument("--size", type=int, default=256)
    from rdlib.data.embedded import EmbeddedConfig

    dflt = EmbeddedConfig()
    gen.add_argument("--n-train", type=int, default=dflt.n_train)
    gen.add_argument("--n-test-good", type=int, default=dflt.n_test_good)
    gen.add_argument("--n-test-per-defect", type=int, default=dflt.n_test_per_defect)
    tr = sub.add_parser("train", help="train (or reuse) a run")
    _add_run_args(tr)
    _add_machine_args(tr)
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument("--retrain", action="store_true", help="train again even if a finished run exists")
    ev = sub.add_parser("evaluate", help="evaluate a trained run, write metrics + overlays")
    ev.add_argument("--run", default=None, help="run folder (alternative to repeating the training arguments)")
    _add_run_args(ev, required=False)
    _add_machine_args(ev)
    ev.add_argument("--out", default=None)
    ev.add_argument("--overlays", type=int, default=8, help="number of overlay PNGs (highest scores)")
    ev.add_argument("--compile", action="store_true", help="torch.compile the inference fast path on a CPU too "
                    "(~45 s for WideResNet50-2; pays off after a few hundred images)")
    pr = sub.add_parser("predict", help="score images with a trained run")
    pr.add_argument("--run", required=True)
    pr.add_argument("--images", nargs="+", required=True)
    pr.add_argument("--out", default=None)
    pr.add_argument("--compile", action="store_true", help="torch.compile the inference fast path on a CPU too")
    _add_machine_args(pr)
    sw = sub.add_parser("sweep", help="train method × category × seed runs as tasks on Dask (local or a cluster)")
    sw.add_argument("--methods", required=True, help="comma-separated methods, e.g. rd,rdpp,aand")
    sw.add_argument("--categories", required=True, help="comma-separated categories, or 'all'")
    sw.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    sw.add_argument("--data", default="embedded", help="dataset root, or 'embedded' (default)")
    sw.add_argument("--format", default=None, choices=["mvtec", "mpdd", "btad", "visa"])
    sw.add_argument("--profile", default="book", help="hyper-parameter profile of every method: ci | book | full | paper")
    sw.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                    help="option for every method of the sweep (repeatable)")
    sw.add_argument("--table", default=None, help="results table, .csv or .parquet (default <runs>/sweep-<profile>.csv)")
    sw.add_argument("--runs-dir", default=None)
    sw.add_argument("--address", default=None, help="join an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    sw.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster (default 2)")
    sw.add_argument("--threads", type=int, default=None, help="torch threads per task (default: cores / workers)")
    sw.add_argument("--gpu", action="store_true", help="ask one GPU per task even if none is seen from here")
    rn = sub.add_parser("runs", help="inspect the run store")
    rsub = rn.add_subparsers(dest="runs_cmd", required=True)
    st = rsub.add_parser("stale", help="list run folders whose code, options or data changed since they were "
                         "trained (never reused)")
    st.add_argument("--runs-dir", default=None)
    st.add_argument("--remove", action="store_true", help="delete them")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from rdlib.data import DataError
    from rdlib.methods import OptionError
    from rdlib.models import TeacherWeightsError
    from rdlib.runs import RunError

    if getattr(args, "threads", None) and args.cmd != "sweep":
        import torch

        torch.set_num_threads(args.threads)
    commands = {"methods": cmd_methods, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
                "data": cmd_data, "sweep": cmd_sweep, "runs": cmd_runs}
    try:
        return commands[args.cmd](args)
    except (CLIError, DataError, TeacherWeightsError, OptionError, RunError) as e:
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - an unexpected failure: say so, with the traceback under -v
        if args.verbose:
            raise
        print(f"error: {type(e).__name__}: {e}\n(run with -v for the traceback)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
