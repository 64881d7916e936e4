"""RD-RE: module shapes at the fused resolutions, LDA and ASSA against naive references, the losses and the top-k
score on hand cases, what trains in which stage, SGD parameter groups, resume and the CLI."""
import math

import pytest
import torch
import torch.nn.functional as F

from rdlib.anomaly_map import AnomalyMap
from rdlib.methods import create_method, get_model
from rdlib.methods.rdre import ASSA, RDREMethod, ASSUMPTIONS, CAAMSFF, LDA, focal_loss, segmentation_loss
from rdlib.runs import RunSpec, build_datasets
from rdlib.training import FitConfig, fit
from recording import Interrupted, recording


@pytest.mark.parametrize("teacher,channels", [("resnet18", (64, 128, 256, 512)), ("efficientnet_lite0", (24, 40, 112, 320))])
def test_modules_keep_shapes_at_32_and_16_and_the_model_matches_the_teacher(teacher, channels):
    for c, size, k in ((channels[1], 32, 4), (channels[2], 16, 2)):           # encoder layers 2 and 3 at 256²
        x = torch.randn(2, c, size, size)
        assert LDA(c, size, k)(x).shape == x.shape
        assert CAAMSFF(c, window=8, heads=4)(x).shape == x.shape
    model = get_model("rdre", teacher=teacher, weights="random", image_size=256).eval()
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        t, s = model.teacher(x), model.student(x)
    assert [a.shape for a in t] == [b.shape for b in s]
    assert [a.shape[1] for a in s] == list(channels[:3]) and [a.shape[-1] for a in s] == [64, 32, 16]
    assert model.segment(x).shape == (1, 1, 64, 64)
    amap, score = model(x)
    assert amap.shape == (1, 1, 256, 256) and score.shape == (1,)


def test_lda_descriptor_against_a_window_loop_and_weights_in_0_1():
    torch.manual_seed(0)
    lda = LDA(3, 8, 4)
    x = torch.randn(2, 3, 8, 8)
    d = lda.descriptor(x)
    assert d.shape == (2, 3, 4)                                               # 2×2 windows of 4×4
    for wi, (r, c) in enumerate(((0, 0), (0, 4), (4, 0), (4, 4))):          # row-major window order
        win = x[:, :, r:r + 4, c:c + 4].flatten(2)
        assert torch.allclose(d[:, :, wi], win.amax(2) - win.mean(2), atol=1e-6)
    w = lda.weights(x)
    assert w.shape == (2, 3) and (w > 0).all() and (w < 1).all()
    assert torch.allclose(lda(x), x * w[..., None, None])
    with pytest.raises(ValueError, match="must divide"):
        LDA(3, 8, 3)
    with pytest.raises(ValueError, match="built for 8×8"):
        lda(torch.randn(1, 3, 16, 16))


def naive_window_attention(attn: ASSA, x: torch.Tensor, branch: str) -> torch.Tensor:
    """One window and one head at a time, with explicit loops over tokens for the position bias."""
    b, c, h, w = x.shape
    m, heads = min(attn.window, h), attn.heads
    d = c // heads
    out = torch.zeros(b, c, h, w)
    for bi in range(b):
        for wy in range(0, h, m):
            for wx in range(0, w, m):
                tok = x[bi, :, wy:wy + m, wx:wx + m].reshape(c, -1).T             # M²×C, row-major
                q, k, v = attn.qkv(tok).split(c, dim=1)
                heads_out = []
                for hd in range(heads):
                    qh, kh, vh = (z[:, hd * d:(hd + 1) * d] for z in (q, k, v))
                    logits = qh @ kh.T / math.sqrt(d)
                    for i in range(m * m):
                        for j in range(m * m):
                            dy = i // m - j // m + attn.window - 1
                            dx = i % m - j % m + attn.window - 1
                            logits[i, j] += attn.bias_table[dy * (2 * attn.window - 1) + dx, hd]
                    a = torch.softmax(logits, -1) if branch == "dense" else F.relu(logits) ** 2
                    heads_out.append(a @ vh)
                y = attn.proj(torch.cat(heads_out, 1))
                out[bi, :, wy:wy + m, wx:wx + m] = y.T.reshape(c, m, m)
    return out


@pytest.mark.parametrize("branch", ["dense", "sparse"])
def test_assa_with_one_branch_weight_at_zero_is_pure_dense_or_sparse_attention(branch):
    torch.manual_seed(1)
    attn = ASSA(8, window=4, heads=2)
    with torch.no_grad():
        attn.bias_table.normal_()
        attn.branch_logits.copy_(torch.tensor([-1e4, 0.0]) if branch == "dense" else torch.tensor([0.0, -1e4]))
    x = torch.randn(1, 8, 8, 8)
    assert torch.allclose(attn(x), naive_window_attention(attn, x, branch), atol=1e-4)
    w1, w2 = ASSA(8).branch_weights()
    assert w1.item() == pytest.approx(0.5) and w2.item() == pytest.approx(0.5)   # equal mix at initialisation


def test_focal_and_segmentation_loss_on_hand_cases():
    p = torch.tensor([0.5, 0.9, 0.2]).view(1, 1, 1, 3)
    t = torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 1, 3)
    focal = (-(0.5 ** 4) * math.log(0.5) - (0.1 ** 4) * math.log(0.9) - (0.2 ** 4) * math.log(0.8)) / 3
    assert focal_loss(p, t).item() == pytest.approx(focal, rel=1e-5)
    l1 = (0.5 + 0.1 + 0.2) / 3
    assert segmentation_loss(p, t).item() == pytest.approx(focal + l1, rel=1e-5)
    assert segmentation_loss(p, t, "focal").item() == pytest.approx(focal, rel=1e-5)
    with pytest.raises(ValueError, match="Table 9"):
        segmentation_loss(p, t, "dice")


def test_top_k_score_on_a_hand_case():
    amap = AnomalyMap(4, sigma=0.0, score="topk", top_k=3)
    m = torch.zeros(1, 1, 4, 4)
    m[0, 0, 0, :3] = torch.tensor([9.0, 6.0, 3.0])
    m[0, 0, 3, 3] = 1.0
    full, score = amap.from_map(m)
    assert torch.allclose(full, m, atol=1e-6) and score.item() == pytest.approx(6.0)   # mean of 9, 6, 3


def _rdre_data(tiny_benchmark, **options):
    spec = RunSpec.from_profile("rdre", "ci", str(tiny_benchmark), "coffee", options)
    return spec, *build_datasets(spec)


RecordingRDRE = recording(RDREMethod)


def test_stage_one_trains_the_student_and_stage_two_only_the_head(tiny_benchmark):
    spec, train, _ = _rdre_data(tiny_benchmark)
    torch.manual_seed(0)
    method = RecordingRDRE(**spec.options)
    start = {k: v.clone() for k, v in method.state_dict().items()}
    fit(method, train, cfg=FitConfig(batch_size=3, seed=1, progress=False, device="cpu"))
    s1, s2 = method.after["student"], method.after["segment"]

    def moved(a, b, prefix):
        return any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))

    assert not moved(start, s2, "model.teacher.")
    assert moved(start, s1, "model.student_encoder.") and moved(start, s1, "model.decoder.fusions.")
    assert not moved(start, s1, "model.seg.")
    assert not moved(s1, s2, "model.student_encoder.") and not moved(s1, s2, "model.decoder.")   # bitwise, BN too
    assert moved(s1, s2, "model.seg.")


def test_sgd_parameter_groups_carry_the_papers_learning_rates(tiny_benchmark):
    spec, _, _ = _rdre_data(tiny_benchmark)
    method = create_method("rdre", **spec.options)
    opt = method.configure_optimizers(method.stages()[0])["student"]
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"student": 0.1, "lda": 0.01, "caams": 0.01}
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 1e-4 for g in opt.param_groups)
    lda_ids = {id(p) for f in method.model.decoder.fusions.values() for p in f.lda.parameters()}
    assert {id(p) for g in opt.param_groups if g["name"] == "lda" for p in g["params"]} == lda_ids
    n_student = sum(1 for _ in method.model.student_encoder.parameters()) + sum(1 for _ in method.model.decoder.parameters())
    assert sum(len(g["params"]) for g in opt.param_groups) == n_student


def test_variants_and_options(tiny_benchmark):
    spec, train, _ = _rdre_data(tiny_benchmark, seg=False, fuse=(), synthesis="rdre_simplex")
    method = create_method("rdre", **spec.options)
    assert [s.name for s in method.stages()] == ["student"] and not method.model.decoder.fusions
    assert spec.data_config().synthesis == "rdre_simplex" and "synthetic" in train[0]
    amap, score = method.predict(torch.rand(2, 3, 64, 64))                   # the cosine map without a head
    assert amap.shape == (2, 1, 64, 64)
    with pytest.raises(ValueError, match="Table 8"):
        create_method("rdre", synthesis="cutpaste", image_size=64)
    with pytest.raises(ValueError, match="fuse="):
        create_method("rdre", fuse=(4,), image_size=64, weights="random")
    assert all(len(row) == 4 for row in ASSUMPTIONS)


def test_resume_across_the_stage_boundary_is_bit_identical(tiny_benchmark, tmp_path):
    spec, train, _ = _rdre_data(tiny_benchmark)
    opts = {**spec.options, "student_steps": 3, "seg_steps": 3}
    cfg = FitConfig(batch_size=3, seed=3, progress=False, device="cpu", checkpoint_every=2)
    torch.manual_seed(0)
    straight = RecordingRDRE(**opts)
    fit(straight, train, cfg=cfg)
    for crash_at in (3, 3):                    # step 3 of stage 1 (resumes at step 2); then step 2 of stage 2
        torch.manual_seed(0)
        with pytest.raises(Interrupted):
            fit(RecordingRDRE(crash_at=crash_at, **opts), train, cfg=cfg, run_dir=tmp_path)
    resumed = RecordingRDRE(**opts)
    fit(resumed, train, cfg=cfg, run_dir=tmp_path)
    a, b = straight.checkpoint_state(), resumed.checkpoint_state()
    assert any(k.startswith("model.seg.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_cli_trains_and_evaluates_rdre(tiny_benchmark, tmp_path, capsys):
    import json

    from rdlib.__main__ import main

    common = ["--method", "rdre", "--data", str(tiny_benchmark), "--category", "brick", "--profile", "ci",
              "-o", "seg_loss=focal", "--runs-dir", str(tmp_path / "runs")]
    assert main(["train", *common, "--no-progress"]) == 0
    assert main(["evaluate", *common, "--out", str(tmp_path / "eval")]) == 0
    assert {"i_auroc", "p_auroc", "aupro"} <= set(json.loads((tmp_path / "eval/metrics.json").read_text())["metrics"])


def test_without_the_head_is_the_full_run_scored_by_the_cosine_map(tiny_benchmark):
    """Table 5's rows without Seg are re-scorings: stage 1 never sees the head, so the student a run with ``seg=True``
    ends stage 1 with is bitwise the student of a run with ``seg=False``, and ``scoring(source="distill")`` of the
    first gives the second's maps."""
    spec, train, test = _rdre_data(tiny_benchmark)
    cfg = FitConfig(batch_size=3, seed=5, progress=False, device="cpu")
    torch.manual_seed(0)
    with_head = create_method("rdre", **spec.options)
    fit(with_head, train, cfg=cfg)
    torch.manual_seed(0)
    without = create_method("rdre", **{**spec.options, "seg": False})
    fit(without, train, cfg=cfg)
    x = torch.stack([test[i]["image"] for i in range(4)])
    seg_map, _ = with_head.predict(x)
    with with_head.scoring(source="distill"):
        a_map, a_score = with_head.predict(x)
    b_map, b_score = without.predict(x)
    assert torch.equal(a_map, b_map) and torch.equal(a_score, b_score)
    assert not torch.allclose(seg_map, a_map)
    assert with_head.predict(x)[0].equal(seg_map)                  # the context restores the head's map
    with pytest.raises(ValueError, match="segmentation head"):
        with without.scoring(source="seg"):
            pass


def test_window_zero_is_global_attention_over_each_fused_map():
    m = get_model("rdre", teacher="resnet18", weights="random", image_size=64, window=0)
    sizes = {k: f.lda.size for k, f in m.decoder.fusions.items()}          # layers 2, 3: 8² and 4² at 64²
    assert {k: f.caams.attention.window for k, f in m.decoder.fusions.items()} == sizes
    m.eval()
    amap, _ = m(torch.rand(1, 3, 64, 64))
    assert amap.shape == (1, 1, 64, 64)
