"""RD++ (Tien et al., CVPR 2023) against the official code (github.com/tientrandinh/Revisiting-Reverse-Distillation).

Official pieces used: ``model.resnet.wide_resnet50_2`` (encoder + OCBE), ``model.de_resnet.de_wide_resnet50_2``,
``utils.utils_train.MultiProjectionLayer`` / ``Revisit_RDLoss`` / ``loss_fucntion``, main.py's two Adams,
``utils.utils_test.cal_anomaly_map`` + ``gaussian_filter(σ=4)``, and ``dataset.noise.Simplex_CLASS`` for the noise.

Shims, at run time only: ``fastprogress`` (imported by main.py, never used here) and ``.to('cuda')`` inside
``Revisit_RDLoss`` (utils_train.py hard-codes the device of the contrast target) sent to the CPU.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from benchmarks.official.harness import (IMAGENET_MEAN, IMAGENET_STD, STUDENT_RENAMES, KeyMap, compare,
                                         compare_init, compare_levels, compare_tensors, copy_weights,
                                         official_modules, randomize_batchnorm_, rd_student_rules, resnet_rules,
                                         step_both, map_rows, result, KeepGradients, outputs_of)

REPOSITORY = "tientrandinh/Revisiting-Reverse-Distillation"
PAPER = "RD++"
MODULES = ["model.resnet", "model.de_resnet", "utils.utils_train", "utils.utils_test", "dataset.noise"]

_TEACHER, _TEACHER_UNUSED = resnet_rules("encoder")
_STUDENT, _STUDENT_UNUSED = rd_student_rules("bn", "decoder")
KEYMAP = KeyMap(
    rules=[*_TEACHER, *_STUDENT,
           (r"^proj\.proj_a\.proj\.", "projection.layers.0."), (r"^proj\.proj_b\.proj\.", "projection.layers.1."),
           (r"^proj\.proj_c\.proj\.", "projection.layers.2.")],
    renames=STUDENT_RENAMES, unused={**_TEACHER_UNUSED, **_STUDENT_UNUSED})
# Every projection conv is followed by an InstanceNorm, which removes a per-channel constant: those biases have a true
# gradient of 0, and both sides return rounding noise for it.
ZERO_GRADIENT = r"^projection\.layers\.\d+\..*bias$"


@contextlib.contextmanager
def cuda_on_cpu():
    """utils_train.py builds its contrast target with ``.to('cuda')``; on a machine without CUDA send it to the CPU."""
    original = torch.Tensor.to

    def to(self, *args, **kwargs):
        if args and str(args[0]).startswith("cuda") and not torch.cuda.is_available():
            args = ("cpu", *args[1:])
        return original(self, *args, **kwargs)

    torch.Tensor.to = to
    try:
        yield
    finally:
        torch.Tensor.to = original


def official_noisy(x01: torch.Tensor, noise_module, seed: int) -> tuple[torch.Tensor, list]:
    """The official dataset's noisy image (dataset/dataset.py): one box of side U{10, …, S/8 − 1} at a corner in
    [1, S − side), 0.2 × rand_3d_octaves((3, h, w), 6, 0.6) added, no clipping. Returns the batch and the boxes."""
    rng = np.random.RandomState(seed)
    out, boxes = x01.clone().double(), []
    size = x01.shape[-1]
    lattice = noise_module.Simplex_CLASS()
    for i in range(x01.shape[0]):
        h, w = rng.randint(10, size // 8), rng.randint(10, size // 8)
        y, x = rng.randint(1, size - h), rng.randint(1, size - w)
        out[i, :, y:y + h, x:x + w] += 0.2 * torch.from_numpy(lattice.rand_3d_octaves((3, h, w), 6, 0.6))
        boxes.append((h, w))
    return out.float(), boxes


def run(checkout: Path, image_size: int = 256, batch: int = 2, seed: int = 0) -> dict:
    import types

    from opensimplex import OpenSimplex

    from rdlib.methods import create_method
    from rdlib.methods.rdpp.loss import projection_loss
    from rdlib.synthesis.noise import octave_sum

    if image_size < 96:
        raise ValueError("the official noise boxes are U{10, …, S/8 − 1} px: use --image-size 96 or more")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    method = create_method("rdpp", teacher="wide_resnet50_2", weights="random", image_size=image_size, accumulate=1)
    model = method.model
    randomize_batchnorm_(model, g)
    shims = {"fastprogress": types.SimpleNamespace(progress_bar=lambda x, *a, **k: x)}
    with official_modules(checkout, MODULES, shims) as off:
        encoder, bn = off.model_resnet.wide_resnet50_2(pretrained=False)
        decoder = off.model_de_resnet.de_wide_resnet50_2(pretrained=False)
        proj = off.utils_utils_train.MultiProjectionLayer(base=64)
        official = nn.ModuleDict({"encoder": encoder, "bn": bn, "decoder": decoder, "proj": proj})
        init = compare_init(model, official, KEYMAP)
        account = copy_weights(model, official, KEYMAP)
        mapping = account.pop("mapping")
        rows = [init]

        # the noise itself: the same OpenSimplex seed on both sides
        lattice = off.dataset_noise.Simplex_CLASS()
        lattice.newSeed(123456789)
        rows.append(compare("synthesis: octave noise 3×31×27, same seed (rand_3d_octaves)",
                            octave_sum(OpenSimplex(123456789), (3, 31, 27), 6, 0.6, 32.0),
                            lattice.rand_3d_octaves((3, 31, 27), 6, 0.6)))

        x = torch.rand(batch, 3, image_size, image_size, generator=g)
        noisy, boxes = official_noisy(x, off.dataset_noise, seed)     # the same synthesised batch for both
        xn, noisyn = (x - IMAGENET_MEAN) / IMAGENET_STD, (noisy - IMAGENET_MEAN) / IMAGENET_STD

        # ---- official training step (main.py): encoder eval; bn, proj, decoder train; L = L_distill + 0.2 L_proj
        encoder.eval(); bn.train(); proj.train(); decoder.train()
        loss_terms = off.utils_utils_train.Revisit_RDLoss()
        t_off, tn_off = encoder(xn), encoder(noisyn)
        pn_off, p_off = proj(t_off, features_noise=tn_off)
        s_off = decoder(bn(p_off))
        distill_off = off.utils_utils_train.loss_fucntion(t_off, s_off)
        torch.manual_seed(seed + 1)                                   # the SSOT shuffle: the first random draw
        with cuda_on_cpu():
            proj_off = loss_terms(tn_off, pn_off, p_off)
        total_off = distill_off + 0.2 * proj_off
        torch.manual_seed(seed + 1)
        perm = torch.randperm(batch)
        b = batch
        ssot_off = sum(loss_terms.sinkhorn(torch.softmax(a.view(b, -1), -1), torch.softmax(a[perm].view(b, -1), -1))
                       for a in p_off)
        recon_off = sum(loss_terms.reconstruct(a, c) for a, c in zip(pn_off, p_off))
        contrast_off = sum(loss_terms.contrast(n.view(b, -1), c.view(b, -1), target=-torch.ones(b))
                           for n, c in zip(tn_off, p_off))
        opt_off = [torch.optim.Adam(proj.parameters(), lr=0.001, betas=(0.5, 0.999)),
                   torch.optim.Adam(list(decoder.parameters()) + list(bn.parameters()), lr=0.005, betas=(0.5, 0.999))]
        for o in opt_off:
            o.zero_grad()
        total_off.backward()

        # ---- rdlib: the method's own training_step, its outputs recorded by hooks
        method.train()
        stage = method.stages()[0]
        torch.manual_seed(seed + 1)
        with outputs_of(model.teacher, model.projection, model.decoder) as seen:
            logs = method.training_step({"image": x, "synthetic": noisy}, {"keep": KeepGradients()}, stage)
        (t_both,), (p_our, pn_our), (s_our,) = seen
        rows += compare_levels("teacher features E(x)", [f[:b] for f in t_both], t_off)
        rows += compare_levels("teacher features E(x̃), noisy", [f[b:] for f in t_both], tn_off)
        rows += compare_levels("projection P(E(x)) (train mode)", p_our, p_off)
        rows += compare_levels("projection P(E(x̃)) (train mode)", pn_our, pn_off)
        rows += compare_levels("student features (train mode)", s_our, s_off)
        for name, ours, theirs in [("L_distill (flattened cosine)", logs["distill"], distill_off),
                                   ("L_ssot (batch vs its shuffle)", logs["ssot"], ssot_off),
                                   ("L_recon", logs["recon"], recon_off), ("L_contrast", logs["contrast"], contrast_off),
                                   ("L_proj = (ssot + 0.01 recon + 0.1 contrast) / 1.11", logs["proj"], proj_off),
                                   ("total loss L_distill + 0.2 L_proj", logs["loss"], total_off)]:
            rows.append(compare(name, ours, theirs.detach()))
        rows.append(compare_tensors("projection conv biases: true gradient 0 (InstanceNorm follows)", model, official,
                                    mapping, "grad", only=ZERO_GRADIENT, absolute=1e-5))
        rows += step_both("", model, official, mapping, list(method.configure_optimizers(stage).values()), opt_off,
                          exclude=ZERO_GRADIENT)
        rows.append(compare_tensors("BN running statistics after the step", model, official, mapping, "buffer"))

        # ---- the loss terms where random weights leave them at 0: contrast above its margin, SSOT on two clouds
        gs = torch.Generator().manual_seed(seed + 7)
        shapes = [(4, 256, 16, 16), (4, 512, 8, 8), (4, 1024, 4, 4)]
        tn = [torch.randn(s, generator=gs) for s in shapes]
        p = [n + 0.5 * torch.randn(n.shape, generator=gs) for n in tn]          # cos(E(x̃), P(x)) ≈ 0.9 > margin
        pn = [q + 0.3 * torch.randn(q.shape, generator=gs) for q in p]
        torch.manual_seed(seed + 3)
        with cuda_on_cpu():
            proj_stress_off = loss_terms(tn, pn, p)
        torch.manual_seed(seed + 3)
        shuffle = torch.randperm(4)
        stress = projection_loss(tn, pn, p, shuffle=shuffle)
        contrast_stress_off = sum(loss_terms.contrast(n.view(4, -1), q.view(4, -1), target=-torch.ones(4))
                                  for n, q in zip(tn, p))
        rows.append(compare("L_contrast on features above the margin (cos ≈ 0.9)", stress["contrast"],
                            contrast_stress_off))
        rows.append(compare("L_proj on those features, shuffle " + str(shuffle.tolist()), stress["proj"], proj_stress_off))

        # ---- evaluation (utils_test.evaluation_multi_proj), one image at a time
        bn.eval(); proj.eval(); decoder.eval()
        method.eval()
        maps = []
        with torch.no_grad():
            for i in range(b):
                t_i = encoder(xn[i:i + 1])
                m, _ = off.utils_utils_test.cal_anomaly_map(t_i, decoder(bn(proj(t_i))), image_size, amap_mode="a")
                maps.append(gaussian_filter(m, sigma=4))
            map_our, score_our = method.predict(x)
        maps = np.stack(maps)
        rows += map_rows(map_our, score_our, maps)
    zero = [r for r in rows if r["component"].startswith(("L_ssot", "L_contrast"))]
    note = ("With random weights L_ssot and L_contrast are 0 on both sides (SSOT compares a batch with its own "
            "shuffle; the contrast stays below its margin), so both are also compared on features built to exercise them. "
            f"Noise boxes of this batch: {boxes}.") if zero else ""
    return result(PAPER, REPOSITORY, MODULES, image_size, batch, seed,
                  "uniform noise in [0, 1] and its noisy copy made by the official recipe; the official models get "
                  "both ImageNet-normalised", account, rows, note=note)
