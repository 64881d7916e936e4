"""Execute the book's notebooks with papermill in one profile (ci | book | full | paper).

    python notebooks/_run.py --profile book --out _executed/book               # all notebooks, in order
    python notebooks/_run.py --profile paper --only 01_rd --sweep CATEGORIES=carpet,grid,leather

The jupytext ``.py`` files are the source of truth. Parameters come from ``notebooks/params/<profile>.yaml``
(``common`` plus one section per notebook) and ``-p NAME=YAML`` overrides. A sweep runs one notebook per value and
survives a failing value: it carries on and reports every failure at the end (exit code 1).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

import jupytext
import papermill
import yaml

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook_names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("[0-9][0-9]_*.py"))


def load_params(profile: str, name: str) -> dict:
    path = HERE / "params" / f"{profile}.yaml"
    if not path.is_file():
        raise SystemExit(f"{path}: no such profile file; choose from {[p.stem for p in (HERE / 'params').glob('*.yaml')]}")
    data = yaml.safe_load(path.read_text()) or {}
    return {**(data.get("common") or {}), **(data.get(name) or {}), "PROFILE": profile}


def _literal(value) -> str:
    """A Python literal for a parameter value, strings in double quotes as the chapters write them."""
    import json

    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def parameters_as_run(source: str, params: dict) -> str:
    """The parameters cell's ``source`` with each assignment whose name papermill injected (``params``) set to the
    injected value, the comment on its first line kept: the cell then shows what ran, not the defaults. An
    assignment spanning several lines becomes one line; other lines are left as they are."""
    import ast
    import io
    import tokenize

    comments = {t.start[0]: t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT}
    lines = source.splitlines()
    for node in reversed(ast.parse(source).body):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in params:
            name, comment = node.targets[0].id, comments.get(node.lineno)
            line = f"{name} = {_literal(params[name])}"
            if comment:
                line = f"{line:<33} {comment}"              # the chapters align their comments at column 34
            lines[node.lineno - 1:node.end_lineno] = [line]
    return "\n".join(lines)


def execute(name: str, params: dict, out: Path, log_output: bool = False) -> None:
    # Kernels inherit this process's environment: a non-interactive MPLBACKEND (e.g. Agg from a test runner) would
    # silently drop every figure from the executed notebook.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    nb = jupytext.read(HERE / f"{name}.py")
    nb.metadata["kernelspec"] = KERNELSPEC
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(nb, str(out), parameters=params, cwd=str(out.parent), kernel_name="python3",
                               log_output=log_output, progress_bar=False)
    # The book shows the parameters cell (with its comments) holding the values that ran; papermill's injected copy
    # is plumbing: remove it from the page.
    import nbformat

    done = nbformat.read(out, as_version=4)
    for cell in done.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags:
            cell.source = parameters_as_run(cell.source, params)
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(done, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="book", help="ci | book | full | paper")
    ap.add_argument("--out", default=None, help="output folder (default _executed/<profile>)")
    ap.add_argument("--only", nargs="*", default=None, help="notebook names (default: all, in order)")
    ap.add_argument("-p", "--param", action="append", default=[], help="NAME=YAML override, e.g. -p EPOCHS=5")
    ap.add_argument("--sweep", default=None, help="NAME=v1,v2,... one execution per value (e.g. CATEGORIES=brick,grass)")
    args = ap.parse_args(argv)
    out_dir = Path(args.out or HERE.parent / "_executed" / args.profile).resolve()
    names = args.only or notebook_names()
    unknown = sorted(set(names) - set(notebook_names()))
    if unknown:
        raise SystemExit(f"unknown notebook(s) {unknown}; available: {notebook_names()}")
    overrides = {}
    for item in args.param:
        if "=" not in item:
            raise SystemExit(f"--param {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        overrides[k] = yaml.safe_load(v)
    failures = []
    for name in names:
        params = {**load_params(args.profile, name), **overrides}
        jobs = [(out_dir / f"{name}.ipynb", params)]
        if args.sweep:
            key, values = args.sweep.split("=", 1)
            jobs = []
            for v in values.split(","):
                value = [v] if key == "CATEGORIES" else yaml.safe_load(v)
                jobs.append((out_dir / f"{name}-{key.lower()}-{v}.ipynb", {**params, key: value}))
        for out, p in jobs:
            t0 = time.time()
            print(f"[{args.profile}] {name} -> {out.relative_to(out_dir.parent) if out.is_relative_to(out_dir.parent) else out}", flush=True)
            try:
                execute(name, p, out)
                print(f"    done in {time.time() - t0:.0f} s", flush=True)
            except Exception as e:  # noqa: BLE001 - a sweep survives one failing value
                failures.append((out.name, e))
                print(f"    FAILED after {time.time() - t0:.0f} s: {type(e).__name__}: {str(e)[-2000:]}", flush=True)
                if os.environ.get("RDLIB_TRACEBACK"):
                    traceback.print_exc()
    if not args.sweep:                        # the introduction's findings, from every chapter executed in out_dir
        from rdlib.findings import write_findings

        print(f"findings of the executed chapters -> {write_findings(out_dir)}", flush=True)
    if failures:
        print(f"{len(failures)} notebook run(s) failed: {[f for f, _ in failures]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
