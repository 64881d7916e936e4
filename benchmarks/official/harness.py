"""The equivalence harness's shared pieces: import an official checkout from its path, give both models the same
random weights through an explicit key map, compare tensors, write the result file.

Nothing of an official repository is copied here: its modules are imported from the checkout the user names, at run
time, and dropped from ``sys.modules`` afterwards (two official repositories both have a ``resnet.py``).

A comparison row is ``{"component", "shape", "max_abs", "max_rel", "tolerance", "verdict"}`` with
``max_rel = max|ours − official| / max|official|`` (the largest error relative to the tensor's scale, so a value near
zero cannot inflate it). The tolerance is float32 rounding through a deep network: 1e-4 relative.
"""
from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

TOLERANCE = 1e-4
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "official"
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class HarnessError(RuntimeError):
    """The checkout or the key map does not fit; the message says what and where."""


# --------------------------------------------------------------------------------------------- the official code
def checkout_commit(checkout: Path) -> str | None:
    """The commit a checkout is at (``git rev-parse HEAD``), or None for a plain copy (then pass ``--commit``)."""
    try:
        out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None


@contextlib.contextmanager
def official_modules(checkout: Path, names: list[str], shims: dict | None = None):
    """Import ``names`` (e.g. ``["resnet", "models.de_resnet"]``) from ``checkout``; yield them as attributes
    (dots → underscores). ``shims`` are stand-in modules for imports the official code makes but never needs here.
    sys.path and sys.modules are restored afterwards."""
    checkout = Path(checkout).resolve()
    missing = [n for n in names if not (checkout / (n.replace(".", "/") + ".py")).is_file()]
    if missing:
        raise HarnessError(f"{checkout}: not the expected official checkout, it lacks {', '.join(m.replace('.', '/') + '.py' for m in missing)}")
    before = dict(sys.modules)
    sys.path.insert(0, str(checkout))
    for name, module in (shims or {}).items():
        if name not in sys.modules:
            sys.modules[name] = module
    cwd = os.getcwd()
    try:
        os.chdir(checkout)                     # some official modules read files relative to their folder on import
        yield SimpleNamespace(**{n.replace(".", "_"): importlib.import_module(n) for n in names})
    finally:
        os.chdir(cwd)
        sys.path.remove(str(checkout))
        for name in set(sys.modules) - set(before):       # the checkout's own modules and the shims; third-party
            module = sys.modules[name]                       # libraries it pulled in stay (C extensions cannot reload)
            origins = [getattr(module, "__file__", None) or "", *map(str, getattr(module, "__path__", None) or [])]
            if name in (shims or {}) or any(o.startswith(str(checkout)) for o in origins):
                del sys.modules[name]


# ---------------------------------------------------------------------------------------------------- weights
@dataclass
class KeyMap:
    """Official state-dict key → rdlib key.

    ``rules``: (regex, replacement), the first that matches an official key rewrites it; ``renames``: applied to every
    rewritten key afterwards (e.g. ``downsample`` → ``shortcut``); ``unused``: regex → why the official forward never
    reads those tensors. Every official tensor must be mapped or unused, every rdlib tensor mapped exactly once, with
    equal shapes (``reshape``: regexes of official keys whose tensor is the same numbers in another shape, e.g. a
    leading 1×).
    """

    rules: list[tuple[str, str]]
    renames: list[tuple[str, str]] = field(default_factory=list)
    unused: dict[str, str] = field(default_factory=dict)
    reshape: list[str] = field(default_factory=list)

    def resolve(self, official: dict, ours: dict) -> tuple[dict[str, str], dict]:
        mapping, unused, unmatched = {}, {}, []
        for key in official:
            reason = next((why for pat, why in self.unused.items() if re.search(pat, key)), None)
            if reason is not None:
                unused.setdefault(reason, []).append(key)
                continue
            rule = next(((pat, rep) for pat, rep in self.rules if re.search(pat, key)), None)
            if rule is None:
                unmatched.append(key)
                continue
            new = re.sub(rule[0], rule[1], key, count=1)
            for pat, rep in self.renames:
                new = re.sub(pat, rep, new)
            mapping[key] = new
        if unmatched:
            raise HarnessError(f"{len(unmatched)} official tensors have no rule and are not listed as unused, e.g. {unmatched[:4]}")
        targets = list(mapping.values())
        absent = [k for k in targets if k not in ours]
        twice = sorted({k for k in targets if targets.count(k) > 1})
        uncovered = [k for k in ours if k not in set(targets)]
        if absent or twice or uncovered:
            raise HarnessError(f"key map does not fit: {len(absent)} targets absent in rdlib (e.g. {absent[:3]}), "
                               f"{len(twice)} hit twice (e.g. {twice[:3]}), {len(uncovered)} rdlib tensors not covered "
                               f"(e.g. {uncovered[:3]})")
        shapes = [(k, tuple(official[k].shape), tuple(ours[v].shape)) for k, v in mapping.items()
                  if official[k].shape != ours[v].shape and not (any(re.search(p, k) for p in self.reshape)
                                                                  and official[k].numel() == ours[v].numel())]
        if shapes:
            raise HarnessError(f"shape mismatches, e.g. {shapes[:3]}")
        account = {"official_tensors": len(official), "rdlib_tensors": len(ours), "mapped": len(mapping),
                   "official_unused": {why: len(keys) for why, keys in unused.items()}}
        return mapping, account


def resnet_rules(official: str, ours: str = "teacher.body") -> tuple[list, dict]:
    """(rules, unused) for a torchvision-style ResNet encoder at ``official`` whose layer1–3 rdlib holds at ``ours``
    (timm ``features_only`` keeps torchvision's names, ``downsample`` included); its layer4 and fc are never reached."""
    o = re.escape(official)
    return ([(rf"^{o}\.(conv1|bn1|layer1|layer2|layer3)\.", rf"{ours}.\1.")],
            {rf"^{o}\.(layer4|fc)\.": f"{official} layer4 and fc: never reached (the forward stops at layer3)"})


def rd_student_rules(bn: str, decoder: str) -> tuple[list, dict]:
    """(rules, unused) for RD's student as all four official repositories build it (RD4AD's ``BN_layer`` and
    ``de_resnet``), at the official prefixes ``bn`` and ``decoder``: MFF convs → ``bottleneck.mff*``, OCE →
    ``bottleneck.oce``, decoder layer1–3 → ``decoder.stage_a–c``; BN_layer's conv4/bn4 are built but never called.
    Use with :data:`STUDENT_RENAMES` (``downsample``/``upsample`` → ``shortcut``)."""
    b, d = re.escape(bn), re.escape(decoder)
    rules = [(rf"^{b}\.conv1\.", "bottleneck.mff1.0.0."), (rf"^{b}\.bn1\.", "bottleneck.mff1.0.1."),   # f1: two
             (rf"^{b}\.conv2\.", "bottleneck.mff1.1.0."), (rf"^{b}\.bn2\.", "bottleneck.mff1.1.1."),   # stride-2 convs
             (rf"^{b}\.conv3\.", "bottleneck.mff2.0."), (rf"^{b}\.bn3\.", "bottleneck.mff2.1."),         # f2: one
             (rf"^{b}\.bn_layer\.", "bottleneck.oce."),
             (rf"^{d}\.layer1\.", "decoder.stage_a."), (rf"^{d}\.layer2\.", "decoder.stage_b."),
             (rf"^{d}\.layer3\.", "decoder.stage_c.")]
    return rules, {rf"^{b}\.(conv4|bn4)\.": "BN_layer conv4/bn4: built in __init__, never called in forward"}


STUDENT_RENAMES = [(r"^(bottleneck|decoder)\.(.*)\.(downsample|upsample)\.", r"\1.\2.shortcut.")]


def n_params(module: nn.Module, keys: set[str] | None = None) -> int:
    return sum(p.numel() for k, p in module.named_parameters() if keys is None or k in keys)


def randomize_batchnorm_(module: nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm random affine parameters and running statistics, so eval-mode BN is not the identity
    (fresh BN has mean 0, var 1, γ 1, β 0) and a swapped tensor cannot go unnoticed."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                if m.affine:
                    m.weight.copy_(0.5 + torch.rand(c, generator=generator))
                    m.bias.copy_(0.1 * torch.randn(c, generator=generator))
                if m.track_running_stats:
                    m.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                    m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=generator))


def copy_weights(ours: nn.Module, official: nn.Module, keymap: KeyMap) -> dict:
    """Copy every rdlib tensor into its official counterpart (in place); return the key-map accounting, with parameter
    counts side by side."""
    osd, usd = official.state_dict(), ours.state_dict()
    mapping, account = keymap.resolve(osd, usd)
    with torch.no_grad():
        for k, v in mapping.items():
            osd[k].copy_(usd[v].view_as(osd[k]))
    official_params = dict(official.named_parameters())
    account["parameters"] = {"official_all": n_params(official),
                             "official_used": sum(official_params[k].numel() for k in mapping if k in official_params),
                             "rdlib": n_params(ours)}
    account["mapping"] = mapping
    return account


# ---------------------------------------------------------------------------------------------------- comparing
def _f64(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().double().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def compare(component: str, ours, official, tolerance: float = TOLERANCE) -> dict:
    """One row: max absolute and relative (to max|official|) difference and the verdict."""
    a, b = _f64(ours), _f64(official)
    if a.shape != b.shape:
        a = a.reshape(b.shape) if a.size == b.size else a
    if a.shape != b.shape:
        return {"component": component, "shape": list(b.shape), "max_abs": None, "max_rel": None,
                "tolerance": tolerance, "verdict": f"differs (shapes {list(a.shape)} vs {list(b.shape)})"}
    diff = float(np.abs(a - b).max()) if a.size else 0.0
    scale = float(np.abs(b).max()) if b.size else 0.0
    rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
    return {"component": component, "shape": list(b.shape), "max_abs": diff, "max_rel": rel, "tolerance": tolerance,
            "verdict": "equal" if rel <= tolerance else "differs"}


def compare_levels(component: str, ours: list, official: list, tolerance: float = TOLERANCE) -> list[dict]:
    if len(ours) != len(official):
        return [{"component": component, "shape": None, "max_abs": None, "max_rel": None, "tolerance": tolerance,
                 "verdict": f"differs ({len(ours)} vs {len(official)} levels)"}]
    return [compare(f"{component}, level {k + 1}", a, b, tolerance) for k, (a, b) in enumerate(zip(ours, official))]


def compare_tensors(component: str, ours: nn.Module, official: nn.Module, mapping: dict, what: str,
                    tolerance: float = TOLERANCE, exclude: str | None = None, only: str | None = None,
                    absolute: float | None = None) -> dict:
    """One row for many tensors: ``what`` = "grad" (gradients of trainable parameters), "param" (parameters) or
    "buffer" (BN running statistics); the worst tensor is named. ``exclude`` / ``only``: regexes on rdlib names.
    ``absolute``: judge by the largest absolute difference instead (for tensors whose true value is 0, e.g. the
    gradient of a bias that a normalisation removes, where both sides hold rounding noise)."""
    o_all = {**dict(official.named_parameters()), **dict(official.named_buffers())}
    u_all = {**dict(ours.named_parameters()), **dict(ours.named_buffers())}
    u_params = dict(ours.named_parameters())
    rows = []
    for ko, ku in mapping.items():
        if (exclude and re.search(exclude, ku)) or (only and not re.search(only, ku)):
            continue
        if what == "buffer":
            if ku in u_params or not u_all[ku].is_floating_point():
                continue
            a, b = u_all[ku], o_all[ko]
        else:
            if ku not in u_params or not u_params[ku].requires_grad:
                continue
            a, b = (u_params[ku].grad, o_all[ko].grad) if what == "grad" else (u_params[ku], o_all[ko])
            if a is None and b is None:
                continue
            if a is None or b is None:
                return {"component": component, "shape": None, "max_abs": None, "max_rel": None, "tolerance": tolerance,
                        "verdict": f"differs ({ku}: gradient on one side only)"}
        rows.append((ku, compare(ku, a, b, tolerance)))
    if not rows:
        raise HarnessError(f"{component}: nothing to compare")
    if absolute is not None:
        worst_key, worst = max(rows, key=lambda r: r[1]["max_abs"])
        return {"component": component, "shape": [len(rows)], "max_abs": worst["max_abs"], "max_rel": None,
                "tolerance_abs": absolute, "tensors": len(rows), "worst": worst_key,
                "verdict": "equal" if worst["max_abs"] <= absolute else "differs"}
    worst_key, worst = max(rows, key=lambda r: r[1]["max_rel"])
    return {"component": component, "shape": [len(rows)], "max_abs": max(r["max_abs"] for _, r in rows),
            "max_rel": worst["max_rel"], "tolerance": tolerance, "tensors": len(rows), "worst": worst_key,
            "verdict": "equal" if all(r["verdict"] == "equal" for _, r in rows) else "differs"}


def step_both(label: str, ours: nn.Module, official: nn.Module, mapping: dict, our_optimizers: list,
              official_optimizers: list, exclude: str | None = None) -> list[dict]:
    """After both backward passes: a row comparing the gradients, then both sides' optimizers step on the official
    gradients (see :func:`share_gradients`) and a row compares the parameters."""
    rows = [compare_tensors(f"{label}gradients of every trainable tensor", ours, official, mapping, "grad",
                            exclude=exclude)]
    share_gradients(ours, official, mapping)
    for opt in [*official_optimizers, *our_optimizers]:
        opt.step()
    rows.append(compare_tensors(f"{label}parameters after one optimizer step (same gradients)", ours, official,
                                mapping, "param"))
    return rows


def compare_init(ours: nn.Module, official: nn.Module, keymap: KeyMap, tolerance: float = 0.1) -> dict:
    """Both sides freshly built (call before :func:`copy_weights`): the standard deviation of every trainable weight
    with ≥ 4096 elements outside the teacher, matched by the key map. The draws differ, so this compares the
    initialisation schemes, within ``tolerance`` (10 %) of the official std."""
    osd, usd = official.state_dict(), ours.state_dict()
    mapping, _ = keymap.resolve(osd, usd)
    worst, worst_key, n = 0.0, None, 0
    for ko, ku in mapping.items():
        if ku.startswith("teacher.") or not ku.endswith("weight") or usd[ku].numel() < 4096:
            continue
        rel = abs(float(usd[ku].float().std()) - float(osd[ko].float().std())) / float(osd[ko].float().std())
        n += 1
        if rel >= worst:
            worst, worst_key = rel, ku
    return {"component": "initialisation: std of every fresh trainable weight", "shape": [n], "max_abs": None,
            "max_rel": worst, "tolerance_std": tolerance, "tensors": n, "worst": worst_key,
            "verdict": "equal" if worst <= tolerance else "differs"}


class KeepGradients:
    """Stands in for the optimizers handed to ``training_step``: step and zero_grad do nothing, so the gradients that
    the method's own step produced stay on the parameters to be compared."""

    def step(self):
        pass

    def zero_grad(self, set_to_none: bool = True):
        pass


@contextlib.contextmanager
def outputs_of(*modules: nn.Module):
    """Record each module's output during the block (a list per module)."""
    seen = [[] for _ in modules]
    hooks = [m.register_forward_hook(lambda _m, _i, out, k=k: seen[k].append(out)) for k, m in enumerate(modules)]
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


def share_gradients(ours: nn.Module, official: nn.Module, mapping: dict) -> None:
    """Give rdlib's parameters the official gradients, so a following optimizer step compares the optimizers (their
    hyper-parameters and the tensors they update) and not rounding: Adam's first step is about ±lr·sign(g), so a
    gradient within rounding of zero can flip a whole step."""
    o_params, u_params = dict(official.named_parameters()), dict(ours.named_parameters())
    with torch.no_grad():
        for ko, ku in mapping.items():
            if ku in u_params and u_params[ku].grad is not None and o_params[ko].grad is not None:
                u_params[ku].grad.copy_(o_params[ko].grad.view_as(u_params[ku].grad))


def map_rows(map_ours: torch.Tensor, score_ours: torch.Tensor, map_official: np.ndarray) -> list[dict]:
    """The anomaly map (rdlib B×1×S×S against the official B×S×S) and the image score (the official map's max)."""
    return [compare("anomaly map (Σ levels, Gaussian σ=4)", map_ours[:, 0], map_official),
            compare("image score (max of the map)", score_ours, map_official.reshape(len(map_official), -1).max(1))]


# ------------------------------------------------------------------------------------------------------ result
def _rdlib_commit() -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--", "rdlib")
    return {"commit": git("rev-parse", "HEAD") or None, "rdlib_modified": bool(dirty)}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "os": platform.platform()}


def result(paper: str, repository: str, modules: list[str], image_size: int, batch: int, seed: int, inputs: str,
           account: dict, rows: list[dict], note: str = "") -> dict:
    """What an adapter's ``run`` returns (``write_result`` adds the commits, the machine and the verdict)."""
    return {"paper": paper, "official": {"repository": repository, "modules": modules},
            "setup": {"teacher": "wide_resnet50_2, random weights, BN statistics randomised", "image_size": image_size,
                      "batch": batch, "seed": seed, "dtype": "float32", "device": "cpu", "input": inputs, "note": note},
            "weights": account, "components": rows}


def write_result(name: str, result: dict, out_dir: Path = RESULTS) -> Path:
    import rdlib

    rows = result["components"]
    result = {"name": name, **result, "rdlib": {**_rdlib_commit(), "version": rdlib.__version__},
              "machine": machine(), "date": datetime.date.today().isoformat(), "tolerance_rel": TOLERANCE,
              "verdict": "equal" if all(r["verdict"] == "equal" for r in rows) else "differs"}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path
