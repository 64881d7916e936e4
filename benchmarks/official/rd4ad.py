"""RD (Deng & Li, CVPR 2022) against the official RD4AD code (github.com/hq-deng/RD4AD).

Official pieces used: ``resnet.wide_resnet50_2`` (encoder + ``BN_layer``, the OCBE), ``de_resnet.de_wide_resnet50_2``
(the decoder), ``main.loss_fucntion`` (the training loss), ``main.py``'s Adam, ``test.cal_anomaly_map`` with
``amap_mode='a'`` and ``scipy.ndimage.gaussian_filter(σ=4)`` (the evaluation map; the image score is its maximum).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from benchmarks.official.harness import (IMAGENET_MEAN, IMAGENET_STD, STUDENT_RENAMES, KeyMap, compare,
                                         compare_init, compare_levels, compare_tensors, copy_weights,
                                         official_modules, randomize_batchnorm_, rd_student_rules, resnet_rules,
                                         step_both, map_rows, result)

REPOSITORY = "hq-deng/RD4AD"
PAPER = "RD"
MODULES = ["resnet", "de_resnet", "main", "test"]

_TEACHER, _TEACHER_UNUSED = resnet_rules("encoder")
_STUDENT, _STUDENT_UNUSED = rd_student_rules("bn", "decoder")
KEYMAP = KeyMap(rules=_TEACHER + _STUDENT, renames=STUDENT_RENAMES, unused={**_TEACHER_UNUSED, **_STUDENT_UNUSED})


def official_map(t: list[torch.Tensor], s: list[torch.Tensor], size: int, test) -> tuple[np.ndarray, np.ndarray]:
    """The official evaluation, one image at a time (it reads item 0 of the batch): map B×S×S, score B."""
    maps = []
    for i in range(t[0].shape[0]):
        m, _ = test.cal_anomaly_map([f[i:i + 1] for f in s], [f[i:i + 1] for f in t], size, amap_mode="a")
        maps.append(gaussian_filter(m, sigma=4))
    maps = np.stack(maps)
    return maps, maps.reshape(len(maps), -1).max(1)


def run(checkout: Path, image_size: int = 256, batch: int = 2, seed: int = 0) -> dict:
    from rdlib.methods import create_method
    from rdlib.methods.rd.loss import rd_loss

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    method = create_method("rd", teacher="wide_resnet50_2", weights="random", image_size=image_size)
    model = method.model
    randomize_batchnorm_(model, g)
    with official_modules(checkout, MODULES) as off:
        encoder, bn = off.resnet.wide_resnet50_2(pretrained=False)
        decoder = off.de_resnet.de_wide_resnet50_2(pretrained=False)
        official = nn.ModuleDict({"encoder": encoder, "bn": bn, "decoder": decoder})
        init = compare_init(model, official, KEYMAP)
        account = copy_weights(model, official, KEYMAP)
        mapping = account.pop("mapping")
        rows = [init]

        x = torch.rand(batch, 3, image_size, image_size, generator=g)     # rdlib: [0, 1]; official: normalised
        xn = (x - IMAGENET_MEAN) / IMAGENET_STD
        # training step, as main.py runs it: encoder in eval, bn and decoder in train mode
        encoder.eval(); bn.train(); decoder.train()
        method.train()
        t_off = encoder(xn)
        t_our = model.encode(x)
        rows += compare_levels("teacher features f_E", t_our, t_off)
        phi_off, phi_our = bn(t_off), model.bottleneck(t_our)
        rows.append(compare("OCBE embedding φ (train mode)", phi_our, phi_off))
        s_off, s_our = decoder(phi_off), model.decoder(phi_our)
        rows += compare_levels("student features f_D (train mode)", s_our, s_off)
        loss_off = off.main.loss_fucntion(t_off, s_off)
        loss_our = rd_loss(t_our, s_our)
        rows.append(compare("loss (flattened cosine, main.loss_fucntion)", loss_our, loss_off))
        opt_off = torch.optim.Adam(list(decoder.parameters()) + list(bn.parameters()), lr=0.005, betas=(0.5, 0.999))
        opt_our = method.configure_optimizers(method.stages()[0])["student"]
        opt_off.zero_grad(); opt_our.zero_grad()
        loss_off.backward(); loss_our.backward()
        rows += step_both("", model, official, mapping, [opt_our], [opt_off])
        rows.append(compare_tensors("BN running statistics after the step", model, official, mapping, "buffer"))

        # evaluation, as test.evaluation runs it
        bn.eval(); decoder.eval()
        method.eval()
        with torch.no_grad():
            t_off = encoder(xn)
            map_off, score_off = official_map(t_off, decoder(bn(t_off)), image_size, off.test)
            map_our, score_our = method.predict(x)
        rows += map_rows(map_our, score_our, map_off)
    return result(PAPER, REPOSITORY, MODULES, image_size, batch, seed,
                  "uniform noise in [0, 1]; the official models get it ImageNet-normalised",
                  account, rows)
