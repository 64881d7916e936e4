"""Which code a run executes, and a hash of it: the part of a run's key that follows the code.

A run of method *m* executes the run store and the training loop (:mod:`rdlib.runs`, :mod:`rdlib.training`), its
method's package (``rdlib/methods/<paper>/``, or the module of a method registered from outside ``rdlib``), the
anomaly synthesis when its data configuration asks for it, and every ``rdlib`` module these import, read from the
source (imports inside functions included). Their bytes, hashed, are part of the run's key
(:meth:`rdlib.runs.RunSpec.key`): editing a loss gives its method's runs new keys, so a rebuild retrains them,
while editing a notebook, the plotting, the claims or another method's package leaves every key as it was.
The registry's package ``rdlib/methods/__init__.py`` finds the method packages at run time, not by import, so one
method's package is never part of another's code unless it imports it.

    code_files("urd")      # ('rdlib/__init__.py', ..., 'rdlib/methods/urd/loss.py', ..., 'rdlib/training.py')
    code_hash("urd")       # 16 hex digits

The hash is read from the files once per process, as the modules are: a process that edits rdlib's source and
reloads it (e.g. a notebook kernel with autoreload) calls :func:`clear_cache` too, or restarts, so that its keys
describe the code it now runs.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
from functools import lru_cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent          # .../rdlib
CORE = ("rdlib.runs", "rdlib.training")                 # every run executes these
SYNTHESIS = ("rdlib.synthesis", "rdlib.data.textures")   # executed only by runs whose data config synthesises
# imported lazily by rdlib.runs: synthesis for the runs that synthesise only, and this module to compute keys
NOT_FOLLOWED = frozenset(SYNTHESIS) | {"rdlib.provenance"}


def module_file(name: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """The source file of ``rdlib`` module ``name`` under ``root`` (a package's ``__init__.py``), or None."""
    parts = name.split(".")
    if parts[0] != "rdlib":
        return None
    p = root.joinpath(*parts[1:])
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    return p.with_suffix(".py") if p.with_suffix(".py").is_file() else None


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_modules(name: str, root: Path = PACKAGE_ROOT, path: Path | None = None) -> set[str]:
    """The ``rdlib`` modules that module ``name`` imports anywhere in its source (relative imports resolved; ``from
    pkg import sub`` counts the submodule). ``path``: the source of a module outside ``rdlib``."""
    path = path or module_file(name, root)
    if path is None:
        return set()
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = _package_of(name, path).split(".")
                pkg = pkg[:len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}", root)}
    return {m for m in found if m.split(".")[0] == "rdlib" and module_file(m, root)}


def module_closure(roots, root: Path = PACKAGE_ROOT, stop=NOT_FOLLOWED) -> set[str]:
    """``roots`` and every ``rdlib`` module they import, transitively, with the packages above each (importing
    ``rdlib.methods.rd.model`` runs ``rdlib/methods/rd/__init__.py``); modules under ``stop`` only as roots."""
    seen, todo = set(), list(roots)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        found = imported_modules(m, root)
        found |= {n.rsplit(".", k)[0] for n in found for k in range(1, n.count("."))}   # importing a.b.c runs a.b
        todo += [n for n in found if n not in seen and not any(n == s or n.startswith(s + ".") for s in stop)]
    return seen


def _method_modules(method: str, root: Path) -> tuple[list[str], list[Path]]:
    """A registered method's own modules: its package under ``rdlib/methods/``; for a method defined outside
    ``rdlib``, the file that defines it and the ``rdlib`` modules that file imports."""
    from rdlib.methods import method_class

    cls = method_class(method)
    mod = cls.__module__
    if mod.startswith("rdlib.methods."):
        pkg = ".".join(mod.split(".")[:3])
        folder = root.joinpath(*pkg.split(".")[1:])
        return [pkg + ("" if p.stem == "__init__" else f".{p.stem}") for p in sorted(folder.glob("*.py"))], []
    try:
        source = Path(inspect.getsourcefile(cls))
    except TypeError:
        source = None
    if source is None or not source.is_file():
        raise ValueError(f"method {method!r} is defined where its source cannot be read ({mod}, e.g. a notebook or "
                         "the interactive prompt), so its runs' keys cannot follow its code: define it in a module")
    return sorted(imported_modules(mod, root, source)), [source]


def code_files(method: str, synthesis: bool = False, root: Path | None = None) -> tuple[str, ...]:
    """The source files a run of ``method`` executes (``synthesis``: its data config synthesises anomalies),
    relative to the folder above ``root`` (default: this installed ``rdlib``), sorted; a method registered from
    outside ``rdlib`` adds its own file as an absolute path."""
    return _code_files(method, synthesis, Path(root or PACKAGE_ROOT))


def code_hash(method: str, synthesis: bool = False, root: Path | None = None) -> str:
    """A hash of the names and bytes of :func:`code_files`: 16 hex digits (read once per process)."""
    return _code_hash(method, synthesis, Path(root or PACKAGE_ROOT))


def clear_cache() -> None:
    """Forget the hashes computed so far (after editing source files in a running process)."""
    _code_files.cache_clear()
    _code_hash.cache_clear()


@lru_cache(maxsize=None)
def _code_files(method: str, synthesis: bool, root: Path) -> tuple[str, ...]:
    own, outside = _method_modules(method, root)
    roots = [*CORE, *own, *(SYNTHESIS if synthesis else ())]
    stop = NOT_FOLLOWED - set(SYNTHESIS) if synthesis else NOT_FOLLOWED
    files = {module_file(m, root).relative_to(root.parent).as_posix() for m in module_closure(roots, root, stop)}
    return tuple(sorted(files)) + tuple(str(p) for p in outside)


@lru_cache(maxsize=None)
def _code_hash(method: str, synthesis: bool, root: Path) -> str:
    h = hashlib.sha256()
    for f in _code_files(method, synthesis, root):
        p = Path(f) if Path(f).is_absolute() else root.parent / f
        h.update(f.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


__all__ = ["CORE", "SYNTHESIS", "clear_cache", "code_files", "code_hash", "imported_modules", "module_closure",
           "module_file"]
