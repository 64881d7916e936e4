"""The inference fast path of a trained (frozen) method, used by ``Method.predict`` once the method is frozen
(:meth:`rdlib.methods.base.Method.freeze`, done by :meth:`rdlib.runs.Run.load_method`) and by the cost tables.

    fast = optimize_for_inference(method)          # a folded, channels-last copy, checked against the plain path
    amap, score = fast(images)                      # under torch.inference_mode()
    fast.report                                     # what was applied, the check's error, why compile was (not) kept

Four steps, each exact up to float rounding and each checked, not assumed:

1. **BatchNorm folding.** An eval-mode BN after a convolution is an affine map per output channel, so it folds
   into the convolution:  W' = W · γ/σ,  b' = (b − μ) · γ/σ + β  with σ = √(running_var + ε). Pairs are found
   where a module registers a ``Conv2d`` / ``ConvTranspose2d`` and then a ``BatchNorm2d`` of its width (ResNet's
   conv1/bn1 ..., timm's EfficientNet blocks, RD's OCBE and decoder); timm's ``BatchNormAct2d`` keeps its
   activation. Registration order is not execution order in general, which is why step 4 exists.
2. **Channels-last** memory format for weights and inputs (oneDNN / cuDNN run NHWC convolutions faster).
3. **torch.inference_mode** (no autograd bookkeeping).
4. **A check**: the folded model's maps and scores must equal the plain path's within ``atol`` (1e-4) on a probe
   batch; if not, the unfolded copy is used and the report says so.

``torch.compile`` (Inductor with *freezing*: weights as constants, pre-packed for oneDNN) is tried where it usually
pays: on CUDA, and on a CPU only when asked (``compile=True``), since compiling WideResNet50-2 RD takes ~45 s on
2 cores, more than it saves on a few hundred images. Its output is checked the same way and it is kept only if it
is faster on the probe; any failure falls back to the eager model, with the reason in the report.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from rdlib.timing import latency_ms

log = logging.getLogger(__name__)


def fold_conv_bn(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.Module:
    """``conv`` with ``bn`` folded in (a new module, ``torch.nn.utils.fusion.fuse_conv_bn_eval``):
    W' = W·γ/σ per output channel, b' = (b − μ)·γ/σ + β."""
    return fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))


def _out_channels(conv: nn.Module) -> int | None:
    if isinstance(conv, nn.ConvTranspose2d):
        return conv.out_channels if conv.groups == 1 else None
    if isinstance(conv, nn.Conv2d):
        return conv.out_channels
    return None


def _replacement(bn: nn.BatchNorm2d) -> nn.Module:
    """What is left of a folded BN: nothing, or timm's ``BatchNormAct2d`` dropout + activation."""
    rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
    return nn.Sequential(*rest) if rest else nn.Identity()


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d registered right after a convolution of its width (in place); returns how
    many were folded. Check the result against the original (:func:`optimize_for_inference` does)."""
    folded = 0
    for parent in list(module.modules()):
        children = list(parent.named_children())
        for (name_a, a), (name_b, b) in zip(children, children[1:]):
            if (isinstance(b, nn.BatchNorm2d) and not b.training and b.track_running_stats
                    and b.running_mean is not None and _out_channels(a) == b.num_features and not a.training):
                setattr(parent, name_a, fold_conv_bn(a, b))
                setattr(parent, name_b, _replacement(b))
                folded += 1
    return folded


def _max_error(a, b) -> float:
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b))


@dataclass
class FastReport:
    folded: int = 0                      # BatchNorms folded into convolutions
    channels_last: bool = False
    compiled: bool = False
    max_error: float = 0.0               # |fast − plain| on the probe (maps and scores)
    notes: list[str] = field(default_factory=list)


class FastModel(nn.Module):
    """A method's model prepared for inference: ``forward(images)`` → (maps B×1×S×S, scores B) under
    ``torch.inference_mode``; ``report`` says what was applied."""

    def __init__(self, model: nn.Module, channels_last: bool, report: FastReport):
        super().__init__()
        self.model, self.channels_last, self.report = model, channels_last, report
        self.use(model, compiled=False)

    def use(self, fn, compiled: bool) -> None:
        """Run ``fn`` (the eager model or its compiled version; not registered as a submodule)."""
        object.__setattr__(self, "_call", fn)
        object.__setattr__(self, "_compiled", compiled)

    def forward(self, images: torch.Tensor):
        with torch.inference_mode(), _compile_settings(self._compiled):
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            amap, score = self._call(images)
            return amap.contiguous(), score


def _compile_settings(compiled: bool):
    """Inductor's *freezing*: weights become constants, so convolutions get pre-packed (oneDNN) weights and folded
    BatchNorms; it applies when a compiled model is (re)compiled, i.e. on its calls."""
    import contextlib

    if not compiled:
        return contextlib.nullcontext()
    import torch._inductor.config as inductor_config

    return inductor_config.patch(freezing=True)


def compile_wanted(device: torch.device, compile: bool | str = "auto") -> bool:
    """Whether :func:`optimize_for_inference` tries ``torch.compile``: by default (``"auto"``) on a CUDA device only;
    ``True``/``False`` force it. Even when tried, the compiled model is kept only if it matches and is faster."""
    return torch.device(device).type == "cuda" if compile == "auto" else bool(compile)


def optimize_for_inference(method, image_size: int | None = None, fold_bn: bool = True, channels_last: bool = True,
                           compile: bool | str = "auto", atol: float = 1e-4, probe: torch.Tensor | None = None) -> FastModel:
    """A :class:`FastModel` of ``method.model`` (the method itself is left untouched). ``probe``: the check's batch
    (default one random image of ``image_size``, read from the model's anomaly map when not given)."""
    model = method.model
    device = next(model.parameters()).device
    if probe is None:
        size = image_size or getattr(getattr(model, "anomaly_map", None), "out_size", None)
        if size is None:
            raise ValueError("optimize_for_inference: pass image_size (the model has no anomaly_map.out_size)")
        size = size if isinstance(size, int) else int(size[0])
        probe = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        reference = model(probe)
    report = FastReport()
    fast = copy.deepcopy(model).eval()
    fast.requires_grad_(False)
    if fold_bn:
        report.folded = fold_batchnorm(fast)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
        report.channels_last = True
    out = FastModel(fast, channels_last, report)
    report.max_error = _max_error(out(probe), reference)
    if report.max_error > atol:
        report.notes.append(f"folded model off by {report.max_error:.2e} > {atol:g}: folding not used")
        log.warning("inference fast path: %s", report.notes[-1])
        fast = copy.deepcopy(model).eval().to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        report.folded = 0
        out = FastModel(fast, channels_last, report)
        report.max_error = _max_error(out(probe), reference)
    if compile_wanted(device, compile):
        try:
            compiled = torch.compile(fast, dynamic=False)
            trial = FastModel(fast, channels_last, report)
            trial.use(compiled, compiled=True)
            err = _max_error(trial(probe), reference)
            if err > atol:
                report.notes.append(f"torch.compile output off by {err:.2e}: not used")
            else:
                eager_s, compiled_s = (latency_ms(lambda f=f: f(probe), repeats=3, warmup=1, device=probe.device)
                                        for f in (out, trial))
                if compiled_s < eager_s:
                    out.use(compiled, compiled=True)
                    report.compiled = True
                    report.notes.append(f"torch.compile kept: {compiled_s:.1f} ms vs {eager_s:.1f} ms eager")
                else:
                    report.notes.append(f"torch.compile not faster ({compiled_s:.1f} ms vs {eager_s:.1f} ms)")
        except Exception as e:  # noqa: BLE001 - any compile failure falls back to eager
            report.notes.append(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}): eager used")
            log.warning("inference fast path: %s", report.notes[-1])
    model.train(was_training)
    return out
