"""AAND: RAA shapes and algebra, the gate, the losses on hand-computed cases, what trains in which stage, resume
across the stage boundary with LR schedulers, the Table V (a) gate map and the CLI."""
import math

import pytest
import torch
import torch.nn.functional as F

from rdlib.methods import create_method, get_model
from rdlib.methods.aand import (AANDMethod, RAA, amplification_loss, focal_loss, hard_kd_loss, pooled_masks,
                                positional_encoding_2d, residual_intensity)
from rdlib.runs import RunSpec, build_datasets
from rdlib.training import FitConfig, fit
from recording import Interrupted, recording


@pytest.mark.parametrize("name,channels", [("wide_resnet50_2", (256, 512, 1024)), ("resnet18", (64, 128, 256)),
                                           ("efficientnet_lite0", (24, 40, 112))])
def test_raa_keeps_every_level_shape_and_the_student_matches_it(name, channels):
    model = get_model("aand", teacher=name, weights="random", image_size=64).train()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        f_t = model.teacher(x)
    f_a, w, delta = model.advance(f_t)
    assert [f.shape[1] for f in f_t] == list(channels)
    assert [a.shape for a in f_a] == [t.shape for t in f_t] == [d.shape for d in delta]
    assert [g.shape for g in w] == [(2, 1, *t.shape[-2:]) for t in f_t]
    t, s = model(x)
    assert [a.shape for a in t] == [b.shape for b in s]
    amap, score = model.eval()(x)
    assert amap.shape == (2, 1, 64, 64) and score.shape == (2,)


def test_side_branch_leaves_the_backbone_path_unchanged():
    """F_A^k = F_T^k + w^k ⊙ Δ^k with F_T^{k+1} computed from the vanilla F_T^k: the teacher's outputs do not depend
    on the RAA weights, and F_A^k depends on F_T^k alone (changing level 1 leaves F_A^2 and F_A^3 as they were)."""
    torch.manual_seed(0)
    model = get_model("aand", teacher="resnet18", weights="random", image_size=64).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model.teacher(x)
        for p in model.raa.parameters():
            p.add_(torch.randn_like(p))
        f_t = model.teacher(x)
        assert all(torch.equal(a, b) for a, b in zip(before, f_t))
        f_a, w, delta = model.advance(f_t)
        for k in range(3):
            assert torch.allclose(f_a[k], f_t[k] + w[k] * delta[k])
        changed = [f_t[0] * 3.0, f_t[1], f_t[2]]
        f_a2, _, _ = model.advance(changed)
        assert torch.equal(f_a2[1], f_a[1]) and torch.equal(f_a2[2], f_a[2]) and not torch.equal(f_a2[0], f_a[0])


def test_gate_is_a_probability_and_is_replaced_by_the_mask_while_training():
    torch.manual_seed(1)
    raa = RAA(8, memory_items=3)
    f = torch.randn(2, 8, 4, 4)
    out, w, delta = raa(f)
    assert w.shape == (2, 1, 4, 4) and (w >= 0).all() and (w <= 1).all()
    mask = (torch.rand(2, 1, 4, 4) > 0.5).float()
    out_masked, w2, _ = raa(f, mask)
    assert torch.allclose(out_masked, f + mask * delta) and torch.equal(w2, w)     # the prediction is still returned
    with torch.no_grad():                                 # identical normal and anomalous halves: w = 1/2 exactly
        raa.memory[3:] = raa.memory[:3]
    assert torch.allclose(raa(f)[1], torch.full_like(w, 0.5), atol=1e-6)
    none = RAA(8, gate="none")
    out_none, w_none, d_none = none(f, mask)              # ARG without a gate: w ≡ 1 in training and at test
    assert torch.equal(w_none, torch.ones_like(w_none)) and torch.allclose(out_none, f + d_none)


def test_residual_variants_follow_their_definitions():
    torch.manual_seed(2)
    f = torch.randn(1, 4, 2, 2)
    for mode, fn in (("tanh", lambda r: torch.tanh(r) * f), ("sigmoid", lambda r: torch.sigmoid(r) * f),
                     ("learnable", lambda r: r)):
        raa = RAA(4, residual=mode)
        assert torch.allclose(raa.residual(f), fn(raa.residual_mlp(f)))
    tanh = RAA(4).residual(f)
    assert (tanh.abs() <= f.abs() + 1e-7).all()            # |Δ| ≤ |F_T|: a bounded perturbation of each attribute
    with pytest.raises(ValueError, match="residual='relu'"):
        RAA(4, residual="relu")
    with pytest.raises(ValueError, match="divisible by 4"):
        RAA(6)


def test_positional_encoding_layout():
    pe = positional_encoding_2d(8, 3, 5)
    assert pe.shape == (8, 3, 5)
    assert torch.allclose(pe[:4], pe[:4, :1].expand(-1, 3, -1))        # first half: a function of the column only
    assert torch.allclose(pe[4:], pe[4:, :, :1].expand(-1, -1, 5))     # second half: of the row only
    assert torch.allclose(pe[0::2] ** 2 + pe[1::2] ** 2, torch.ones(4, 3, 5))   # sin/cos pairs
    assert torch.allclose(pe[0, 0], torch.sin(torch.arange(5.0)))       # lowest frequency 1 on the first channel


def test_focal_loss_on_a_hand_computed_case():
    """w = 0.5 on a positive: −0.8·0.5²·ln 0.5; w = 0.5 on a negative: −0.2·0.5²·ln 0.5; w = 0.9 on a positive:
    −0.8·0.1²·ln 0.9. Mean over the three patches."""
    w = torch.tensor([0.5, 0.5, 0.9])
    t = torch.tensor([1.0, 0.0, 1.0])
    expected = (-0.8 * 0.25 * math.log(0.5) - 0.2 * 0.25 * math.log(0.5) - 0.8 * 0.01 * math.log(0.9)) / 3
    assert focal_loss(w, t).item() == pytest.approx(expected, rel=1e-5)
    assert torch.isfinite(focal_loss(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0])))   # log(0) guarded


def test_amplification_loss_against_a_slow_reference_and_zero_without_anomalies():
    torch.manual_seed(3)
    f_t, f_a = torch.randn(2, 5, 3, 3), torch.randn(2, 5, 3, 3)
    mask = (torch.rand(2, 1, 3, 3) > 0.6).float()
    fg = (torch.rand(2, 1, 3, 3) > 0.3).float()
    total, count = 0.0, 0
    for b in range(2):
        for i in range(9):
            yi, xi = divmod(i, 3)
            if mask[b, 0, yi, xi] or not fg[b, 0, yi, xi]:
                continue
            n = f_t[b, :, yi, xi]
            for bb in range(2):
                for j in range(9):
                    yj, xj = divmod(j, 3)
                    if not mask[bb, 0, yj, xj]:
                        continue
                    s = F.cosine_similarity(n, f_a[bb, :, yj, xj], dim=0)
                    s_ref = F.cosine_similarity(n, f_t[bb, :, yj, xj], dim=0) - 0.3
                    total += max(0.0, float(s - s_ref))
                    count += 1
    assert count > 0
    assert amplification_loss(f_t, f_a, mask, fg).item() == pytest.approx(total / count, rel=1e-5)
    assert amplification_loss(f_t, f_a, torch.zeros_like(mask), fg).item() == 0.0
    # a residual that pushes the anomalous features away from the normal ones lowers the loss
    assert amplification_loss(f_t, f_t - 10 * f_t.mean((0, 2, 3), keepdim=True), mask) < amplification_loss(f_t, f_t, mask)


def test_hard_kd_and_pooled_masks_and_residual_intensity_on_hand_cases():
    t = torch.zeros(1, 2, 2, 2)
    t[:, 0] = 1.0                                                      # (1, 0) everywhere
    s = torch.zeros(1, 2, 2, 2)
    s[0, :, 0, 0] = torch.tensor([1.0, 0.0])                           # D = 0
    s[0, :, 0, 1] = torch.tensor([0.0, 1.0])                           # D = 1
    s[0, :, 1, 0] = torch.tensor([-1.0, 0.0])                          # D = 2
    s[0, :, 1, 1] = torch.tensor([1.0, 1.0])                           # D = 1 − 1/√2
    assert hard_kd_loss([t], [s], k=2).item() == pytest.approx(1.5, abs=1e-6)
    assert hard_kd_loss([t], [s], k=10).item() == pytest.approx((3 + 1 - 1 / math.sqrt(2)) / 4, abs=1e-6)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1
    mask[..., 2, 2] = 1                                                # 1/4 of its 2×2 cell: below 0.3
    assert pooled_masks(mask, [(2, 2)])[0][0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    delta = torch.zeros(1, 2, 1, 2)
    delta[0, :, 0, 0] = torch.tensor([1.0, 3.0])                       # (1 + 9) / 2 = 5 on the normal patch
    delta[0, :, 0, 1] = torch.tensor([2.0, 2.0])                       # 4 on the anomalous patch
    m = torch.tensor([[[[0.0, 1.0]]]])
    assert residual_intensity(delta, m) == pytest.approx((5.0, 4.0))
    assert residual_intensity(delta, m, torch.full_like(m, 0.5)) == pytest.approx((1.25, 1.0))


def _aand_data(tiny_benchmark, **options):
    spec = RunSpec.from_profile("aand", "ci", str(tiny_benchmark), "coffee", options)
    return spec, *build_datasets(spec)


RecordingAAND = recording(AANDMethod)


def test_stage_one_trains_only_raa_and_stage_two_only_the_student(tiny_benchmark):
    spec, train, _ = _aand_data(tiny_benchmark)
    assert {"image", "synthetic", "mask", "foreground"} <= set(train[0])
    torch.manual_seed(0)
    method = RecordingAAND(**spec.options)
    start = {k: v.clone() for k, v in method.state_dict().items()}
    out = fit(method, train, cfg=FitConfig(batch_size=3, seed=1, progress=False, device="cpu"))
    s1, s2 = method.after["raa"], method.after["distill"]

    def moved(a, b, prefix):
        return any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))

    assert not moved(start, s2, "model.teacher.")                       # the teacher never moves (BN buffers too)
    assert moved(start, s1, "model.raa.") and not moved(start, s1, "model.bottleneck.") \
        and not moved(start, s1, "model.decoder.")
    assert not moved(s1, s2, "model.raa.") and moved(s1, s2, "model.bottleneck.") and moved(s1, s2, "model.decoder.")
    stages = [h["stage"] for h in out["history"]]
    assert stages[0] == "raa" and stages[-1] == "distill"
    raa_logs = [h for h in out["history"] if h["stage"] == "raa"]
    assert all({"focal", "l_a", "delta_normal"} <= set(h) for h in raa_logs)
    assert all({"l_kd", "l_hkd"} <= set(h) for h in out["history"] if h["stage"] == "distill")


def test_without_raa_there_is_one_stage_and_no_synthesis(tiny_benchmark):
    spec, train, _ = _aand_data(tiny_benchmark, raa=False)
    assert spec.data_config().synthesis is None and "synthetic" not in train[0]
    method = create_method("aand", **spec.options)
    assert [s.name for s in method.stages()] == ["distill"]
    t = method.model.teacher(torch.rand(1, 3, 64, 64))
    assert all(torch.equal(a, b) for a, b in zip(method.model.advance(t)[0], t))   # F_A = F_T


def test_resume_across_the_stage_boundary_with_schedulers_is_bit_identical(tiny_benchmark, tmp_path):
    """MultiStepLR at half of each 2-epoch stage; killed in stage 1 and again in stage 2, resumed each time: the
    final weights, RAA included, equal an uninterrupted run's."""
    spec, train, _ = _aand_data(tiny_benchmark)
    opts = {**spec.options, "raa_epochs": 2, "distill_epochs": 2, "lr_milestones": (0.5,)}
    cfg = FitConfig(batch_size=3, seed=3, progress=False, device="cpu")
    torch.manual_seed(0)
    straight = RecordingAAND(**opts)
    fit(straight, train, cfg=cfg)
    steps_per_epoch = math.ceil(len(train) / 3)
    # 1st: the first step of stage-1 epoch 2; 2nd (counted from the resume at that epoch): the first step of
    # stage-2 epoch 2, after the stage boundary and the distill scheduler's first step
    for crash_at in (steps_per_epoch + 1, 2 * steps_per_epoch + 1):
        torch.manual_seed(0)
        with pytest.raises(Interrupted):
            fit(RecordingAAND(crash_at=crash_at, **opts), train, cfg=cfg, run_dir=tmp_path)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["stage_index"] == 1 and ck["schedulers"]["distill"]["last_epoch"] == 1
    resumed = RecordingAAND(**opts)
    fit(resumed, train, cfg=cfg, run_dir=tmp_path)
    a, b = straight.checkpoint_state(), resumed.checkpoint_state()
    assert any(k.startswith("model.raa.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_gate_map_scores_table_v_a_and_gate_precision_is_a_percentage(tiny_benchmark):
    from rdlib.anomaly_map import upsample_sum_blur

    spec, train, test = _aand_data(tiny_benchmark)
    method = create_method("aand", **spec.options)
    fit(method, train, cfg=FitConfig(batch_size=3, seed=1, progress=False, device="cpu"))
    x = torch.stack([test[i]["image"] for i in range(2)])
    with method.scoring(source="gate"):
        amap, score = method.predict(x)
    _, w, _ = method.model.advance(method.model.teacher(x))
    expected = upsample_sum_blur(w, (64, 64), 4.0)
    assert torch.allclose(amap, expected, atol=1e-5) and torch.allclose(score, expected.flatten(1).amax(1))
    assert method.model.map_source == "distill"                        # restored after the block
    stage = method.stages()[0]
    p = method.extra_metrics(stage, test, torch.device("cpu"))["gate_precision"]
    assert 0.0 <= p <= 100.0


def test_options_are_validated():
    with pytest.raises(ValueError, match="gate='soft'"):
        create_method("aand", gate="soft", image_size=64)
    with pytest.raises(ValueError, match="hard_k"):
        create_method("aand", hard_k=0, image_size=64)


def test_cli_trains_and_evaluates_aand(tiny_benchmark, tmp_path, capsys):
    import json

    from rdlib.__main__ import main

    common = ["--method", "aand", "--data", str(tiny_benchmark), "--category", "brick", "--profile", "ci",
              "-o", "hard_k=3", "--runs-dir", str(tmp_path / "runs")]
    assert main(["train", *common, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", *common, "--out", str(tmp_path / "eval")]) == 0
    assert {"i_auroc", "p_auroc", "pro_rd"} <= set(json.loads((tmp_path / "eval/metrics.json").read_text())["metrics"])
    # AAND's code practice, labelled: stage 1 kept at its best test-set gate precision
    assert main(["train", *common, "--no-progress", "--stage-selection", "raa=gate_precision"]) == 0
    run_dir = capsys.readouterr().out.split("run: ")[1].split("\n")[0]
    config = json.loads((__import__("pathlib").Path(run_dir) / "config.json").read_text())
    assert config["spec"]["fit"]["stage_selection"] == {"raa": {"selection": "best_on_test", "metric": "gate_precision"}}
    assert "raa" in json.loads((__import__("pathlib").Path(run_dir) / "config.json").read_text()).get("best", {}) or \
        (__import__("pathlib").Path(run_dir) / "best-raa.pt").is_file()
    assert main(["train", *common, "--no-progress", "--stage-selection", "raa"]) == 2
    assert "STAGE=METRIC" in capsys.readouterr().err


def test_stage_one_counts_foreground_patches_with_the_codes_threshold(monkeypatch):
    """The official amplification loss pools the foreground mask like the anomaly mask and keeps patches whose
    foreground share is > 0.3 (models/loss.py, ``mask_thresh``): a patch 40 % foreground is a normal patch of L_A."""
    import rdlib.methods.aand.method as aand_method

    torch.manual_seed(0)
    method = create_method("aand", image_size=64, weights="random").train()
    raa = next(s for s in method.stages() if s.name == "raa")
    opt = method.configure_optimizers(raa)["raa"]
    fg = torch.zeros(1, 1, 64, 64)
    fg[..., :, :22] = 1                                  # the second 16-px column of patches: 6 / 16 = 0.375 foreground
    seen = []
    real = aand_method.amplification_loss
    monkeypatch.setattr(aand_method, "amplification_loss", lambda t, a, mk, g, *rest: seen.append(g) or real(t, a, mk, g, *rest))
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 40:, 40:] = 1
    method._raa_step({"synthetic": torch.rand(1, 3, 64, 64), "mask": mask, "foreground": fg}, opt)
    deepest = seen[-1][0, 0]                             # the coarsest level: each patch covers many pixels
    share = F.adaptive_avg_pool2d(fg, deepest.shape)[0, 0]
    assert torch.equal(deepest, (share > 0.3).float())
    assert bool(((share > 0.3) & (share <= 0.5)).any())  # patches the old 0.5 threshold left out are counted now


def test_raa_convolutions_start_as_the_official_code_initialises_them():
    """The official ResNet's Kaiming-normal loop (fan_out, ReLU) runs after its RAA modules are built: every RAA conv
    weight has std √(2 / (out channels · k²)), not PyTorch's default (about 2.5× smaller for these widths)."""
    from torch import nn

    from rdlib.methods.aand.raa import RAA

    torch.manual_seed(0)
    for m in RAA(256).modules():
        if isinstance(m, nn.Conv2d):
            expected = (2 / (m.out_channels * m.kernel_size[0] * m.kernel_size[1])) ** 0.5
            assert abs(float(m.weight.std()) / expected - 1) < 0.05


def test_aand_reads_images_bicubic_and_masks_nearest_as_its_code_does():
    from rdlib.methods import method_class

    dc = method_class("aand").data_config({"image_size": 64})
    assert (dc.image_interpolation, dc.mask_interpolation) == ("bicubic", "nearest")
