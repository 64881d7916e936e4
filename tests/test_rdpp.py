"""RD++: projection shapes, each loss term on hand cases (SSOT against a slow log-domain Sinkhorn), the projection in
the inference path, two optimizers with gradient accumulation, training and resume through the loop."""
import math

import pytest
import torch

from rdlib.anomaly_map import AnomalyMap
from rdlib.methods import create_method
from rdlib.methods.rdpp import (MultiProjection, ProjectionLayer, RDPPMethod, contrast_loss, projection_loss,
                                reconstruction_loss, sinkhorn_divergence, ssot_loss)
from rdlib.runs import RunSpec, build_datasets
from rdlib.training import FitConfig, fit
from recording import Interrupted, recording


def test_projection_keeps_every_level_shape_through_the_official_widths():
    proj = MultiProjection([24, 40, 112])
    feats = [torch.randn(2, c, s, s) for c, s in ((24, 16), (40, 8), (112, 4))]
    out = proj(feats)
    assert [o.shape for o in out] == [f.shape for f in feats]
    convs = [m for m in proj.layers[2] if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == \
        [(112, 56, (3, 3)), (56, 28, (3, 3)), (28, 56, (3, 3)), (56, 112, (3, 3))]
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in proj.layers[0]) == 4
    with pytest.raises(ValueError, match="at least 4 channels"):
        ProjectionLayer(3)
    with pytest.raises(ValueError, match="2 feature maps for 3"):
        proj(feats[:2])


def test_reconstruction_and_contrast_terms_on_hand_cases():
    a = torch.zeros(1, 2, 1, 2)
    a[0, :, 0, 0] = torch.tensor([1.0, 0.0])
    a[0, :, 0, 1] = torch.tensor([0.0, 1.0])
    b = a.clone()
    b[0, :, 0, 1] = torch.tensor([0.0, -1.0])                           # pixel 1 reversed: 1 − cos = 2
    assert reconstruction_loss([a], [a]).item() == pytest.approx(0.0, abs=1e-7)
    assert reconstruction_loss([b], [a]).item() == pytest.approx((0 + 2) / 2)
    # contrast: max(0, cos(vec E(x̃), vec P(x)) − margin), batch mean
    same = torch.ones(1, 2, 2, 2)
    ortho = torch.zeros(1, 2, 2, 2)
    ortho[0, 0] = 1.0
    other = torch.zeros(1, 2, 2, 2)
    other[0, 1] = 1.0
    assert contrast_loss([same], [same]).item() == pytest.approx(0.5)
    assert contrast_loss([ortho], [other]).item() == pytest.approx(0.0)
    assert contrast_loss([same], [ortho], margin=0.5).item() == pytest.approx(math.sqrt(0.5) - 0.5, abs=1e-6)
    x, y = torch.cat([same, ortho]), torch.cat([same, other])           # batch mean of 0.5 and 0
    assert contrast_loss([x], [y]).item() == pytest.approx(0.25)


def _sinkhorn_reference(x: torch.Tensor, y: torch.Tensor, eps: float, iters: int = 5000) -> float:
    """Debiased Sinkhorn divergence S_ε(α, β) = OT_ε(α, β) − ½OT_ε(α, α) − ½OT_ε(β, β) for uniform weights and the
    cost |x − y|²/2, by plain log-domain Sinkhorn iterations at a fixed ε (float64)."""
    def ot(a, b):
        c = torch.cdist(a, b) ** 2 / 2
        la, lb = -math.log(len(a)), -math.log(len(b))
        f, g = torch.zeros(len(a), dtype=a.dtype), torch.zeros(len(b), dtype=a.dtype)
        for _ in range(iters):
            f = -eps * torch.logsumexp(lb + (g[None, :] - c) / eps, 1)
            g = -eps * torch.logsumexp(la + (f[:, None] - c) / eps, 0)
        return float(f.mean() + g.mean())

    return ot(x, y) - ot(x, x) / 2 - ot(y, y) / 2


def test_sinkhorn_divergence_matches_a_slow_log_domain_sinkhorn_on_two_different_clouds():
    g = torch.Generator().manual_seed(0)
    a = torch.softmax(4 * torch.randn(5, 6, generator=g, dtype=torch.float64), -1)   # points on the simplex, as SSOT's
    b = torch.softmax(4 * torch.randn(4, 6, generator=g, dtype=torch.float64), -1)
    blur = 0.2
    expected = _sinkhorn_reference(a, b, eps=blur ** 2)
    assert expected > 1e-3                                             # a case where the divergence is not ~0
    # geomloss anneals ε down to blur² with one iteration per ε, so it converges to the fixed-ε value as the
    # annealing factor goes to 1; at the code's 0.95 it is ~1 % below
    assert sinkhorn_divergence(a, b, blur=blur, scaling=0.999).item() == pytest.approx(expected, rel=1e-4)
    assert sinkhorn_divergence(a.float(), b.float(), blur=blur).item() == pytest.approx(expected, rel=2e-2)


def test_ssot_of_a_batch_against_its_shuffle_is_zero_with_zero_gradient():
    """The code's SSOT compares the batch with a permutation of itself: the same empirical measure, so the debiased
    divergence and its gradient vanish whatever the features (the finding in the loss module's docstring)."""
    g = torch.Generator().manual_seed(1)
    for p in (4 * torch.randn(5, 2, 1, 3, generator=g), torch.randn(8, 24, 8, 8, generator=g)):
        p.requires_grad_(True)
        loss = ssot_loss([p, p * 2], shuffle=torch.randperm(len(p), generator=g))
        loss.backward()
        assert abs(loss.item()) < 1e-6 and p.grad.abs().max().item() < 1e-6
    x = torch.randn(1, 3, 2, 2)
    assert ssot_loss([x]).item() == pytest.approx(0.0, abs=1e-7)       # one image


def test_projection_loss_combines_the_terms_with_the_code_weights():
    torch.manual_seed(0)
    noisy = [torch.randn(3, 4, 2, 2)]
    p_noisy, p = [torch.randn(3, 4, 2, 2)], [torch.randn(3, 4, 2, 2)]
    perm = torch.tensor([2, 0, 1])
    out = projection_loss(noisy, p_noisy, p, shuffle=perm)
    expected = (ssot_loss(p, shuffle=perm) + 0.01 * reconstruction_loss(p_noisy, p) + 0.1 * contrast_loss(noisy, p)) / 1.11
    assert out["proj"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert {"ssot", "recon", "contrast"} <= set(out)
    off = projection_loss(noisy, p_noisy, p, shuffle=perm, ssot=False)
    assert off["ssot"].item() == 0.0
    assert off["proj"].item() == pytest.approx(((0.01 * out["recon"] + 0.1 * out["contrast"]) / 1.11).item(), rel=1e-6)


def test_the_projection_is_in_the_inference_path():
    method = create_method("rdpp", image_size=64, weights="random", teacher_activation="relu")
    method.eval()
    x = torch.rand(2, 3, 64, 64)
    amap, score = method.predict(x)
    m = method.model
    with torch.no_grad():                                               # map of the raw teacher against D(OCBE(P(E)))
        t = m.teacher(x)
        ref_map, ref_score = AnomalyMap(64)(t, m.decoder(m.bottleneck(m.projection(t))))
    assert torch.allclose(amap, ref_map, atol=1e-6) and torch.allclose(score, ref_score, atol=1e-6)
    with torch.no_grad():
        m.projection.layers[1][0].weight.mul_(-1.0)                     # change the projection only
    assert not torch.allclose(method.predict(x)[0], amap, atol=1e-4)


def _rdpp_data(tiny_benchmark, **options):
    spec = RunSpec.from_profile("rdpp", "ci", str(tiny_benchmark), "brick", options)
    return spec, *build_datasets(spec)


def test_two_optimizers_step_together_every_second_batch(tiny_benchmark):
    spec, train, _ = _rdpp_data(tiny_benchmark)
    assert spec.data_config().synthesis == "rdpp"
    assert {"image", "synthetic"} <= set(train[0]) and "mask" not in train[0]   # RD++ trains without the mask
    torch.manual_seed(0)
    method = create_method("rdpp", **spec.options)
    stage = method.stages()[0]
    opts = method.configure_optimizers(stage)
    assert opts["student"].param_groups[0]["lr"] == 0.005 and opts["projection"].param_groups[0]["lr"] == 0.001
    method.train()
    method.model.teacher.eval()
    batch = {k: torch.stack([train[i][k] for i in range(3)]) for k in ("image", "synthetic")}
    before = {k: v.detach().clone() for k, v in method.named_parameters()}

    def moved(prefix):                                                   # parameters (BN statistics move every batch)
        return any(not torch.equal(before[k], v) for k, v in method.named_parameters() if k.startswith(prefix))

    logs = method.training_step(batch, opts, stage)
    assert {"distill", "ssot", "recon", "contrast", "proj"} <= set(logs)
    assert logs["loss"] == pytest.approx(logs["distill"] + 0.2 * logs["proj"], rel=1e-5)
    assert not moved("model.")                                           # gradient accumulated, nothing stepped
    method.training_step(batch, opts, stage)
    assert moved("model.projection.") and moved("model.bottleneck.") and moved("model.decoder.")
    assert not moved("model.teacher.")
    before = {k: v.detach().clone() for k, v in method.named_parameters()}
    method.training_step({**batch, "epoch_end": True}, opts, stage)      # an epoch's odd last batch steps alone
    assert moved("model.decoder.")


RecordingRDPP = recording(RDPPMethod)


def test_training_and_a_resume_mid_epoch_equal_an_uninterrupted_run(tiny_benchmark, tmp_path):
    """3 batches an epoch (odd: the last steps alone), killed in epoch 2 and resumed: bitwise the same weights."""
    spec, train, test = _rdpp_data(tiny_benchmark)
    opts = {**spec.options, "epochs": 2}
    cfg = FitConfig(batch_size=2, seed=5, progress=False, device="cpu")
    torch.manual_seed(0)
    straight = RecordingRDPP(**opts)
    out = fit(straight, train, cfg=cfg)
    assert all({"ssot", "recon", "contrast"} <= set(h) for h in out["history"])
    torch.manual_seed(0)
    with pytest.raises(Interrupted):
        fit(RecordingRDPP(crash_at=math.ceil(len(train) / 2) + 2, **opts), train, cfg=cfg, run_dir=tmp_path)
    resumed = RecordingRDPP(**opts)
    fit(resumed, train, cfg=cfg, run_dir=tmp_path)
    a, b = straight.checkpoint_state(), resumed.checkpoint_state()
    assert any(k.startswith("model.projection.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    amap, score = resumed.predict(torch.stack([test[i]["image"] for i in range(2)]))
    assert amap.shape == (2, 1, 64, 64) and torch.isfinite(score).all()


def test_options_are_validated():
    with pytest.raises(ValueError, match="accumulate"):
        create_method("rdpp", accumulate=0, image_size=64, weights="random")
    with pytest.raises(ValueError, match="ssot_scaling"):
        create_method("rdpp", ssot_scaling=1.0, image_size=64, weights="random")
