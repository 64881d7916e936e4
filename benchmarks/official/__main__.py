"""Compare rdlib with a paper's official code: ``python -m benchmarks.official NAME CHECKOUT [options]``.

NAME is one of ``rd4ad`` (github.com/hq-deng/RD4AD), ``rdpp`` (github.com/tientrandinh/Revisiting-Reverse-Distillation),
``urd`` (github.com/hito2448/URD), ``aand`` (github.com/Hui-design/AAND); CHECKOUT is the path of a clone of that
repository (``git clone <url>``; nothing of it is copied into rdlib). Both models get the same random weights through
an explicit key map, see the same inputs (for synthesis-based methods the same synthesised batch), and the harness
compares features, each loss term, gradients, one optimizer step, the anomaly map and the score. It writes
``benchmarks/results/official/NAME.json`` with the official commit, rdlib's commit and the machine; the paper's
chapter shows that file. Run from the repository root; CPU is enough (a minute or two per repository at 256²).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from benchmarks.official.harness import RESULTS, HarnessError, checkout_commit, write_result

ADAPTERS = ("rd4ad", "rdpp", "urd", "aand")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.official", description=__doc__.split("\n\n")[0])
    ap.add_argument("name", choices=ADAPTERS)
    ap.add_argument("checkout", type=Path, help="path of a clone of the official repository")
    ap.add_argument("--commit", help="the official commit, when CHECKOUT is not a git clone")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if not args.checkout.is_dir():
        ap.error(f"{args.checkout}: no such folder; clone the official repository and pass its path")
    commit = args.commit or checkout_commit(args.checkout)
    if commit is None:
        ap.error(f"{args.checkout} is not a git clone; pass --commit with the official commit it holds")
    adapter = importlib.import_module(f"benchmarks.official.{args.name}")
    try:
        result = adapter.run(args.checkout, image_size=args.image_size, batch=args.batch, seed=args.seed)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result["official"]["commit"] = commit
    path = write_result(args.name, result, args.out)
    width = max(len(r["component"]) for r in result["components"])
    for r in result["components"]:
        rel = "—" if r["max_rel"] is None else f"{r['max_rel']:.2e}"
        print(f"{r['component']:<{width}}  max rel {rel:>9}  {r['verdict']}")
    w = result["weights"]
    print(f"parameters: official {w['parameters']['official_used']:,} used of {w['parameters']['official_all']:,}, "
          f"rdlib {w['parameters']['rdlib']:,}; tensors mapped {w['mapped']} of {w['rdlib_tensors']}")
    print(f"wrote {path}")
    return 0 if all(r["verdict"] == "equal" for r in result["components"]) else 1


if __name__ == "__main__":
    sys.exit(main())
