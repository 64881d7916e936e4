"""AAND (Hui et al., "Attention-Guided Anomaly Amplification and Normality Distillation") against the official code
(github.com/Hui-design/AAND).

Official pieces used: ``models.resnet_rar.wide_resnet50_2_rar`` (the advanced teacher with its RAR modules, and the
OCBE), ``models.resnet.wide_resnet50_2`` (the vanilla teacher of stage 1), ``models.de_resnet.de_wide_resnet50_2``,
``models.loss`` (``get_focal_loss``, ``get_amplify_loss``, ``loss_fucntion``), ``models.recons_net``
(``positionalencoding2d``), ``test.cal_anomaly_map`` + ``gaussian_filter(σ=4)``; the optimizers as train.py builds
them. Shim: ``seaborn`` (imported by utils/vis.py for plotting, never called here). The official code runs at 256²
only (its position encodings and mask pools are built for 64/32/16 maps).

Both stages run one step each; the second starts from the first's result on each side (the two optimizers are given
the same gradients, so the advanced teachers stay equal).
"""
from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from benchmarks.official.harness import (IMAGENET_MEAN, IMAGENET_STD, STUDENT_RENAMES, KeyMap, compare,
                                         compare_init, compare_levels, compare_tensors, copy_weights,
                                         official_modules, randomize_batchnorm_, rd_student_rules, resnet_rules,
                                         step_both, map_rows, result, KeepGradients, outputs_of)

REPOSITORY = "Hui-design/AAND"
PAPER = "AAND"
MODULES = ["models.resnet", "models.resnet_rar", "models.de_resnet", "models.loss", "models.recons_net", "test"]
_LEVEL = {"a": "0", "b": "1", "c": "2"}

_TEACHER, _TEACHER_UNUSED = resnet_rules("encoder_AT")
_STUDENT, _STUDENT_UNUSED = rd_student_rules("bn", "decoder")
KEYMAP = KeyMap(
    rules=[*_TEACHER,
           *[(rf"^encoder_AT\.feat_recons_{k}\.projs\.0\.", f"raa.{v}.query.") for k, v in _LEVEL.items()],      # MLP_q
           *[(rf"^encoder_AT\.feat_recons_{k}\.projs2\.0\.", f"raa.{v}.residual_mlp.") for k, v in _LEVEL.items()],  # MLP_Δ
           *[(rf"^encoder_AT\.feat_recons_{k}\.K_list\.0$", f"raa.{v}.memory") for k, v in _LEVEL.items()],     # memory
           *_STUDENT],
    renames=STUDENT_RENAMES, unused={**_TEACHER_UNUSED, **_STUDENT_UNUSED},
    reshape=[r"\.K_list\.0$"],                                       # official memory 1×2L×C, rdlib 2L×C
)


def masks(size: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Anomaly masks (ellipses, one partly off the object) and a rectangular foreground, B×1×S×S; small enough that
    no level has more than the code's 5000 normal / 1000 anomalous patches (so L_A draws no random subsample)."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    s = size / 256
    m = torch.zeros(batch, 1, size, size)
    for i in range(batch):
        cy, cx, ry, rx = ((100, 110, 25, 25), (180, 185, 30, 15))[i % 2]
        m[i, 0] = (((yy - cy * s) / (ry * s)) ** 2 + ((xx - cx * s) / (rx * s)) ** 2 <= 1).float()
    fg = torch.zeros(batch, 1, size, size)
    fg[:, :, int(32 * s):int(224 * s), int(64 * s):int(192 * s)] = 1.0
    return m, fg


def official_maps(first: list, second: list, size: int, test) -> np.ndarray:
    """test.py's map, one image at a time: Σ levels of 1 − cos, bilinear (align_corners), Gaussian σ = 4."""
    return np.stack([gaussian_filter(test.cal_anomaly_map([f[i:i + 1] for f in first], [f[i:i + 1] for f in second],
                                                          size, amap_mode="a")[0], sigma=4)
                     for i in range(first[0].shape[0])])


def run(checkout: Path, image_size: int = 256, batch: int = 2, seed: int = 0) -> dict:
    from rdlib.methods import create_method
    from rdlib.methods.aand.loss import pooled_masks
    from rdlib.methods.aand.raa import positional_encoding_2d
    from rdlib.training import set_train_modes

    if image_size != 256:
        raise ValueError("the official AAND code runs at 256² only (position encodings and mask pools for 64/32/16 maps)")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    method = create_method("aand", teacher="wide_resnet50_2", weights="random", image_size=image_size)
    model = method.model
    randomize_batchnorm_(model, g)
    with official_modules(checkout, MODULES, {"seaborn": types.ModuleType("seaborn")}) as off:
        encoder_at, bn = off.models_resnet_rar.wide_resnet50_2_rar(pretrained=False)
        encoder, _ = off.models_resnet.wide_resnet50_2(pretrained=False)
        decoder = off.models_de_resnet.de_wide_resnet50_2(pretrained=False)
        official = nn.ModuleDict({"encoder_AT": encoder_at, "bn": bn, "decoder": decoder})
        rows = [compare_init(model, official, KEYMAP)]
        account = copy_weights(model, official, KEYMAP)
        mapping = account.pop("mapping")
        # both official teachers load one ImageNet checkpoint (train.py); with random weights, tie them
        missing, unexpected = encoder.load_state_dict(encoder_at.state_dict(), strict=False)
        if missing or not all(k.startswith("feat_recons_") for k in unexpected):
            raise RuntimeError(f"the vanilla and advanced teachers differ beyond the RAR modules: {missing[:3]}")

        x = torch.rand(batch, 3, image_size, image_size, generator=g)
        xn = (x - IMAGENET_MEAN) / IMAGENET_STD
        mask, fg = masks(image_size, batch)
        sizes = [image_size // 4, image_size // 8, image_size // 16]
        rows += [compare(f"positional encoding, level {k + 1}", positional_encoding_2d(c, h, h),
                         off.models_recons_net.positionalencoding2d(c, h, h))
                 for k, (c, h) in enumerate(zip((256, 512, 1024), sizes))]

        # ---- stage 1 (train.py): encoder_AT in train mode with frozen BN, only feat_recons trained;
        #      L_1 = L_focal + 0.1 L_A with the gate replaced by the pooled mask
        for name, p in encoder_at.named_parameters():
            p.requires_grad = "feat_recons" in name
        encoder_at.train()
        for m in encoder_at.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        encoder.eval()
        opt1_off = torch.optim.Adam([p for p in encoder_at.parameters() if p.requires_grad], lr=0.005, betas=(0.5, 0.999))
        with torch.no_grad():
            ft_off = encoder(xn)
        _, fa_off, delta_off, gate_off = encoder_at(xn, flag=False, atten_mask=mask)
        focal_off, _, _ = off.models_loss.get_focal_loss(gate_off, mask)
        _, la_off = off.models_loss.get_amplify_loss(ft_off, fa_off, mask, fg)
        l1_off = focal_off * 1.0 + la_off * 0.1
        opt1_off.zero_grad()
        l1_off.backward()

        stage1, stage2 = method.stages()
        set_train_modes(method, stage1.trains)
        with outputs_of(model.teacher) as seen_t:
            captured = {}
            advance = model.advance
            model.advance = lambda f_t, gates=None: captured.setdefault("out", advance(f_t, gates))
            try:
                logs1 = method.training_step({"synthetic": x, "mask": mask, "foreground": fg},
                                             {"raa": KeepGradients()}, stage1)
            finally:
                del model.advance
        fa_our, w_our, d_our = captured["out"]
        rows += compare_levels("stage 1: teacher features F_T", seen_t[0][0], ft_off)
        rows += compare_levels("stage 1: gate w (predicted)", [w.flatten(2).transpose(1, 2) for w in w_our], gate_off)
        gates = pooled_masks(mask, [f.shape[-2:] for f in fa_our], 0.3)
        rows += compare_levels("stage 1: residual M·Δ (gate = pooled mask > 0.3)",
                               [m * d for m, d in zip(gates, d_our)], delta_off)
        rows += compare_levels("stage 1: amplified features F_A", fa_our, fa_off)
        rows.append(compare("stage 1: L_focal (get_focal_loss)", logs1["focal"], focal_off.detach()))
        rows.append(compare("stage 1: L_A (get_amplify_loss, foreground > 0.3)", logs1["l_a"], la_off.detach()))
        rows.append(compare("stage 1: L_1 = L_focal + 0.1 L_A", logs1["loss"], l1_off.detach()))
        rows += step_both("stage 1 (RAA): ", model, official, mapping, [method.configure_optimizers(stage1)["raa"]],
                          [opt1_off])

        # ---- stage 2: F_A of the advanced teacher in eval mode (predicted gates) → OCBE → decoder, L_KD + L_HKD
        for p in official.parameters():
            p.grad = None
        for p in model.parameters():
            p.grad = None
        encoder_at.eval()
        with torch.no_grad():
            _, fa2_off, _, _ = encoder_at(xn, flag=True)
        bn.train(); decoder.train()
        opt2_off = torch.optim.Adam(list(decoder.parameters()) + list(bn.parameters()), lr=0.005, betas=(0.5, 0.999))
        s2_off = decoder(bn(fa2_off))
        l2_off = off.models_loss.loss_fucntion(fa2_off, s2_off)
        opt2_off.zero_grad()
        l2_off.backward()
        set_train_modes(method, stage2.trains)
        with torch.no_grad():
            fa2_our = model.encode(x)
        rows += compare_levels("stage 2: F_A after stage 1 (eval, predicted gates)", fa2_our, fa2_off)
        # the same F_A into both students: F_A agrees to ~1e-7, and L_HKD's top-10 pixel choice can flip on such a tie
        with outputs_of(model.decoder) as seen_s:
            logs2 = method.training_step({"teacher_features": [f.clone() for f in fa2_off]},
                                         {"distill": KeepGradients()}, stage2)
        rows += compare_levels("stage 2: student features (train mode, the same F_A fed to both)", seen_s[0][0], s2_off)
        with torch.no_grad():
            cos = nn.CosineSimilarity()
            kd_off = sum(torch.mean(1 - cos(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)))
                         for a, b in zip(fa2_off, s2_off))
        rows.append(compare("stage 2: L_KD (flattened cosine)", logs2["l_kd"], kd_off))
        rows.append(compare("stage 2: L_HKD = L_2 − L_KD (top-10 pixels)", logs2["l_hkd"], (l2_off - kd_off).detach()))
        rows.append(compare("stage 2: L_2 (models.loss.loss_fucntion)", logs2["loss"], l2_off.detach()))
        rows += step_both("stage 2 (OCBE, decoder): ", model, official, mapping,
                          [method.configure_optimizers(stage2)["distill"]], [opt2_off])
        rows.append(compare_tensors("BN running statistics after both steps", model, official, mapping, "buffer"))

        # ---- evaluation (test.py): the anomaly map between F_A and the student, and stage 1's F_T vs F_A map
        bn.eval(); decoder.eval()
        method.eval()
        with torch.no_grad():
            _, fa_e, _, _ = encoder_at(xn, flag=True)
            map_off = official_maps(fa_e, decoder(bn(fa_e)), image_size, off.test)
            stage1_off = official_maps(encoder(xn), fa_e, image_size, off.test)
            map_our, score_our = method.predict(x)
            stage1_our, _ = model.anomaly_map(model.teacher(x), model.encode(x))
        rows += map_rows(map_our, score_our, map_off)
        rows.append(compare("stage-1 evaluation map (F_T vs F_A)", stage1_our[:, 0], stage1_off))
    return result(PAPER, REPOSITORY, MODULES, image_size, batch, seed,
                  "uniform noise in [0, 1] as the synthetic image, with drawn anomaly and foreground masks; the "
                  "official models get it ImageNet-normalised", account, rows,
                  note="The first row compares how both sides initialise their trainable tensors (standard deviation "
                       "of each freshly built weight), before the weights are made equal.")
