"""What a method costs at inference: parameters it touches, FLOPs, memory, latency (one place, every chapter uses it).

    inference_cost(method, image_size=128)   # {"params run (M)": ..., "GFLOPs": ..., "latency ms (batch 1)": ...}

Parameters are counted over the modules that actually run during :meth:`Method.predict` (found with forward hooks), so
a network used only while training (URD's expert) is not counted. FLOPs come from ``torch.utils.flop_counter``
(a multiply-add counts 2; convolutions and matrix products only, elementwise work is not counted). Peak memory is
the largest amount of tensor memory alive at once during the call beyond what existed before it (activations and
temporaries; the weights are reported apart): ``torch.cuda.max_memory_allocated`` on a GPU, and on a CPU the
allocation and free events ``torch.profiler`` records, summed in time order.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rdlib.timing import latency_ms


def modules_run(module: nn.Module, fn) -> list[nn.Module]:
    """The modules inside ``module`` whose forward ``fn()`` calls (each once, in call order; containers included:
    some hold parameters of their own beside their children, e.g. timm's BatchNormAct2d)."""
    seen: dict[int, nn.Module] = {}

    def note(mod, _args):                               # a pre-hook that returned a value would replace the inputs
        seen.setdefault(id(mod), mod)

    hooks = [m.register_forward_pre_hook(note) for m in module.modules()]
    try:
        fn()
    finally:
        for h in hooks:
            h.remove()
    return list(seen.values())


def parameters_run(module: nn.Module, fn) -> int:
    """Number of parameters held directly by the modules ``fn()`` runs (each parameter counted once)."""
    params = {id(p): p for m in modules_run(module, fn) for p in m.parameters(recurse=False)}
    return sum(p.numel() for p in params.values())


def flops(fn) -> int:
    """FLOPs of ``fn()`` as ``torch.utils.flop_counter`` counts them."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@contextlib.contextmanager
def _native_stderr_silenced():
    """Discard what C++ code writes to file descriptor 2 meanwhile: the CPU profiler's tracing backend logs a
    start/stop line (and a failed GPU count on machines without one) per use, which notebooks would show."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_mb(fn, device: torch.device | None = None) -> float:
    """Peak tensor memory (MB, 10⁶ bytes) that ``fn()`` allocates on top of what is already allocated."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 1e6
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # An op's *self* allocation (its children report their own); "[memory]" records are frees outside any op.
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    deltas = [e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage for e in events]
    return max(itertools.accumulate(deltas, initial=0)) / 1e6


def weights_mb(module: nn.Module) -> float:
    """Parameters and buffers of ``module`` in MB (10⁶ bytes)."""
    return sum(t.numel() * t.element_size() for t in itertools.chain(module.parameters(), module.buffers())) / 1e6


def inference_cost(method, image_size: int, batch: int = 1, device=None, repeats: int = 10, fast: bool = True,
                   compile: bool | str = "auto") -> dict[str, float]:
    """Parameters run and held, GFLOPs, weights and peak activation memory, and the median latency of
    ``method.predict`` on a batch of ``batch`` random images, through the inference fast path (BN folded,
    channels-last, inference mode; ``compile`` as :func:`rdlib.inference.optimize_for_inference`) unless
    ``fast=False``. Parameters and GFLOPs are those of the plain model (folding removes BN parameters, not work
    a reader would count)."""
    device = torch.device(device) if device is not None else next(method.parameters()).device
    method.to(device).eval()
    x = torch.rand(batch, 3, image_size, image_size, device=device)
    plain = lambda: method.model(x)                                            # noqa: E731
    if fast:
        from rdlib.inference import optimize_for_inference

        fast_model = optimize_for_inference(method, image_size=image_size, compile=compile)
        run = lambda: fast_model(x)                                             # noqa: E731
    else:
        run = lambda: method.predict(x)                                         # noqa: E731
    with torch.no_grad():
        counted = {"params run (M)": parameters_run(method, plain) / 1e6, "GFLOPs": flops(plain) / 1e9 / batch}
    return {"params run (M)": counted["params run (M)"],
            "params held (M)": sum(p.numel() for p in method.parameters()) / 1e6,
            "GFLOPs": counted["GFLOPs"],
            "weights MB": weights_mb(method),
            f"peak activations MB (batch {batch})": peak_memory_mb(run, device),
            f"latency ms (batch {batch})": latency_ms(run, repeats, device=device)}


__all__ = ["flops", "inference_cost", "latency_ms", "modules_run", "parameters_run", "peak_memory_mb", "weights_mb"]


def parameter_table(method: str, parts: dict, teachers=("wide_resnet50_2", "resnet18", "efficientnet_lite0"),
                    **options):
    """Parameters (millions) per part of ``method``'s network for each teacher, at random weights (no download):
    ``parts`` = ``{label: attribute path or list of paths}`` on the model, e.g. ``{"OCBE": "bottleneck",
    "GII ×2": ["decoder.gii_b", "decoder.gii_c"]}``; ``options``: further method options (e.g. ``image_size``)."""
    import operator

    import pandas as pd

    from rdlib.methods import get_model

    rows = {}
    for name in teachers:
        m = get_model(method, teacher=name, weights="random", **options)
        rows[name] = {f"{label} (M)": sum(p.numel() for path in ([paths] if isinstance(paths, str) else paths)
                                          for p in operator.attrgetter(path)(m).parameters()) / 1e6
                      for label, paths in parts.items()}
        del m
    return pd.DataFrame(rows).T.rename_axis("teacher").round(2)


def profile_costs(methods: dict, profile: str, image_size: int, device=None, repeats: int = 5):
    """:func:`inference_cost` of each method (``{label: method name}``) built from its ``profile`` at
    ``image_size`` with random weights (no training, no download): one row per method."""
    import pandas as pd

    from rdlib.methods import create_method, method_profile

    rows = {}
    for label, name in methods.items():
        opts = {**method_profile(name, profile)["options"], "image_size": image_size, "weights": "random"}
        rows[label] = inference_cost(create_method(name, **opts), image_size, device=device, repeats=repeats)
    return pd.DataFrame(rows).T


def _batch_size(batch) -> int | None:
    """The leading dimension of the first tensor in a (nested) batch."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    return next((n for n in map(_batch_size, items) if n), None)


def training_cost(method: str, profile: str, data_root, category: str, device: str = "cpu",
                  fit: dict | None = None):
    """What a training step of ``method``'s ``profile`` costs, per stage, at the profile's batch size and image size
    with the teacher at random weights (no download), on ``device``: parameters held and trained (M); GFLOPs per
    training image (forward and backward of one step ÷ batch, as :func:`flops` counts; work done once per run, such
    as RD's cached teacher features, is not in a step); the memory the training state holds (weights and buffers,
    gradients and Adam's two moments of the trained parameters); and the peak tensor memory a step allocates beyond
    it (:func:`peak_memory_mb`: the CPU profiler's allocation events on a CPU). Three steps per stage: the first sets
    up (optimizer state, caches), the second is counted, the third measured. ``data_root`` / ``category``: a tree
    with at least the profile's batch size of training images; ``fit``: loop settings overriding the profile's
    (e.g. another ``batch_size``)."""
    import pandas as pd

    from rdlib.methods import create_method
    from rdlib.methods.base import BUDGET_OPTIONS
    from rdlib.runs import RunSpec, build_datasets
    from rdlib.training import fit as train

    spec = RunSpec.from_profile(method, profile, data_root, category, fit=fit)
    spec.options = {**spec.options, "weights": "random",
                    **{k: 3 for k in BUDGET_OPTIONS if spec.options.get(k)}}           # 3 steps (epochs of one batch)
    train_set, _ = build_datasets(spec)
    cfg = spec.fit_config(device)
    if len(train_set) < cfg.batch_size:
        raise ValueError(f"{data_root}/{category}: {len(train_set)} training images; the profile's batch is "
                         f"{cfg.batch_size} (one full batch per step is measured)")
    cfg.eval_every, cfg.checkpoint_seconds = 0, 1e9
    m = create_method(method, **spec.options)
    step, rows, calls = m.training_step, {}, {}

    def measured(batch, optimizers, stage):
        n = calls[stage.name] = calls.get(stage.name, 0) + 1
        if n == 2:
            out = {}
            with FlopCounterMode(display=False) as counter:
                out = step(batch, optimizers, stage)
            trained = {id(p): p for o in optimizers.values() for g in o.param_groups for p in g["params"]}
            n_trained = sum(p.numel() for p in trained.values())
            images = _batch_size(batch) or cfg.batch_size
            rows[stage.name] = {"params held (M)": sum(p.numel() for p in m.parameters()) / 1e6,
                                "params trained (M)": n_trained / 1e6, "batch": images,
                                "training GFLOPs / image": counter.get_total_flops() / 1e9 / images,
                                "state MB": weights_mb(m) + 3 * 4 * n_trained / 1e6}   # + grads, Adam m and v (fp32)
            return out
        if n == 3:
            out = {}
            rows[stage.name]["step peak MB"] = peak_memory_mb(lambda: out.update(step(batch, optimizers, stage)),
                                                              torch.device(device))
            return out
        return step(batch, optimizers, stage)

    m.training_step = measured
    train(m, train_set, None, cfg)
    columns = ["params held (M)", "params trained (M)", "batch", "training GFLOPs / image", "state MB", "step peak MB"]
    return pd.DataFrame(rows).T.reindex(columns=columns).astype(float).rename_axis("stage")   # NaN: fewer steps
