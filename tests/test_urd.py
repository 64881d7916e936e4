"""URD: GII shapes and algebra, the teacher loss on a hand-computed case, what trains and what never moves, resume."""
import math

import pytest
import torch

from rdlib.methods import create_method, get_model
from rdlib.methods.urd import GII, level_masks, student_loss, teacher_loss
from rdlib.runs import RunSpec, build_datasets
from rdlib.training import FitConfig, fit


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("name,channels,size", [("wide_resnet50_2", (256, 512, 1024), 64),
                                                  ("resnet18", (64, 128, 256), 64),
                                                  ("efficientnet_lite0", (24, 40, 112), 64)])
@pytest.mark.parametrize("gii", ["sa", "sc"])
def test_gii_and_student_shapes_for_the_paper_and_book_teachers(name, channels, size, gii):
    """Each GII maps (F_S, F_T^deep, F_T^shallow) to the next stage's input; the student's outputs match T's maps."""
    h = size // 16                                                   # level-3 side (stride 16)
    fs = torch.randn(2, channels[2], h, h)
    out = GII(channels[2], channels[1], gii).eval()(fs, torch.randn_like(fs), torch.randn(2, channels[1], 2 * h, 2 * h))
    assert out.shape == fs.shape
    model = get_model("urd", teacher=name, weights="random", gii=gii, image_size=size).train()
    t, s = model(torch.rand(1, 3, size, size))
    assert [f.shape[1] for f in t] == list(channels)
    assert [a.shape for a in t] == [b.shape for b in s]


def test_similarity_has_no_gradient_path():
    """Sim is computed outside autograd: the gradient w.r.t. F_S is the same whether GII computes Sim itself or is
    handed the same values as a constant."""
    torch.manual_seed(0)
    g = GII(8, 4, "sa").eval()
    fs = torch.randn(2, 8, 4, 4, requires_grad=True)
    deep, shallow = torch.randn(2, 8, 4, 4), torch.randn(2, 4, 8, 8)
    sim = GII.similarity(fs, deep)
    assert not sim.requires_grad and sim.grad_fn is None
    assert torch.allclose(sim, torch.nn.functional.cosine_similarity(fs, deep, dim=1).unsqueeze(1).detach(), atol=1e-6)
    (grad_inside,) = torch.autograd.grad(g(fs, deep, shallow).square().sum(), fs)
    (grad_const,) = torch.autograd.grad(g(fs, deep, shallow, sim=sim.clone()).square().sum(), fs)
    assert torch.allclose(grad_inside, grad_const)


def test_similarity_attention_at_sim_one_and_zero_reduces_to_its_two_branches():
    torch.manual_seed(1)
    g = GII(8, 4, "sa").eval()
    fs, deep, shallow = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4), torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        fuse = g.fused(deep, shallow)
        only_teacher = g.merge(torch.cat([fs, g.attend(fuse)], 1))            # Sim ≡ 1: the fused teacher feature
        only_student = g.merge(torch.cat([fs, g.attend(fs)], 1))              # Sim ≡ 0: the student's own feature
        assert torch.allclose(g(fs, deep, shallow, sim=torch.ones(2, 1, 4, 4)), only_teacher, atol=1e-6)
        assert torch.allclose(g(fs, deep, shallow, sim=torch.zeros(2, 1, 4, 4)), only_student, atol=1e-6)
        sc = GII(8, 4, "sc").eval()
        sc.load_state_dict({k: v for k, v in g.state_dict().items() if not k.startswith("attend.")})
        assert torch.allclose(sc(fs, deep, shallow), g.merge(torch.cat([fs, fuse], 1)), atol=1e-6)  # SC: F_fuse itself


def test_teacher_loss_on_a_hand_computed_case():
    """One level, 2 channels, 2×2 pixels. E(I_n) = (1, 0) everywhere; T(I_n) = E(I_n) → normal term 0.
    T(I_a) pixels (1,0), (0,1), (−1,0), (1,1) → D = 0, 1, 2, 1 − 1/√2; mask [[1,0],[1,0]] →
    L1 = (|0−1| + |1−0| + |2−1| + |1−1/√2 − 0|) / 4."""
    e = torch.tensor([[1.0, 1.0], [1.0, 1.0]]), torch.zeros(2, 2)
    e_n = [torch.stack(e)[None]]                                               # 1×2×2×2
    t_a = [torch.tensor([[[1.0, 0.0], [-1.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])[None]]
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])[None, None]
    expected = (1 + 1 + 1 + (1 - 1 / math.sqrt(2))) / 4
    assert teacher_loss(e_n, t_a, e_n, mask).item() == pytest.approx(expected, abs=1e-6)
    # the code's extra term d(T(I_a), E(I_a)) (flattened): 0 for E(I_a) = T(I_a), 2 for E(I_a) = −T(I_a)
    assert teacher_loss(e_n, t_a, e_n, mask, e_anomalous=t_a).item() == pytest.approx(expected, abs=1e-6)
    assert teacher_loss(e_n, t_a, e_n, mask, e_anomalous=[-t_a[0]]).item() == pytest.approx(expected + 2, abs=1e-6)


def _bilinear_align_corners(m, size):
    """Bilinear resize with align_corners=True, pixel by pixel (the reference for F.interpolate)."""
    h, w = len(m), len(m[0])
    oh, ow = size
    out = []
    for i in range(oh):
        y = i * (h - 1) / (oh - 1) if oh > 1 else 0.0
        y0 = min(int(y), h - 1)
        y1, fy = min(y0 + 1, h - 1), y - y0
        row = []
        for j in range(ow):
            x = j * (w - 1) / (ow - 1) if ow > 1 else 0.0
            x0 = min(int(x), w - 1)
            x1, fx = min(x0 + 1, w - 1), x - x0
            top = m[y0][x0] * (1 - fx) + m[y0][x1] * fx
            bottom = m[y1][x0] * (1 - fx) + m[y1][x1] * fx
            row.append(top * (1 - fy) + bottom * fy)
        out.append(row)
    return out


def test_level_masks_rebinarise_before_each_resize_as_the_official_teacher_does():
    """The official chain (resize the previous level's binarised mask, 1 where >= 0.5), written out pixel by pixel,
    on a mask where resizing the continuous chain instead gives other level-2 and level-3 masks."""
    sizes = [(9, 9), (6, 6), (4, 4)]
    mask = (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    want, m = [], mask[0, 0].tolist()
    for size in sizes:
        m = [[1.0 if v >= 0.5 else 0.0 for v in row] for row in _bilinear_align_corners(m, size)]
        want.append(m)
    got = level_masks(mask, sizes)
    assert [g[0, 0].tolist() for g in got] == want
    continuous, c = [], mask
    for size in sizes:                                   # the chain rdlib used until session 13
        c = torch.nn.functional.interpolate(c, size=size, mode="bilinear", align_corners=True)
        continuous.append((c > 0.5).float())
    assert [int((a != b).sum()) for a, b in zip(got, continuous)][1:] != [0, 0]
    edge = torch.tensor([[[[1.0, 0.0]]]])                # resized to 3 wide, the middle is exactly 0.5: the code says 1
    assert level_masks(edge, [(1, 3)])[0][0, 0, 0].tolist() == [1.0, 1.0, 0.0]


def test_student_loss_terms_by_variant():
    torch.manual_seed(2)
    t = [torch.randn(2, 3, 4, 4)]
    e, s_n, s_a = [torch.randn_like(t[0])], [torch.randn_like(t[0])], [torch.randn_like(t[0])]
    from rdlib.losses import cosine_loss_flatten as d
    assert student_loss(s_n, t).item() == pytest.approx(d(t, s_n).item())                         # T–S (RD)
    assert student_loss(s_n, t, s_a).item() == pytest.approx((d(t, s_n) + d(t, s_a)).item())      # + denoising
    full = d(t, s_n) + d(t, s_a) + d(e, s_n) + d(e, s_a)                                           # E–T–S
    assert student_loss(s_n, t, s_a, e).item() == pytest.approx(full.item(), rel=1e-6)


def _urd_data(tiny_benchmark, **options):
    spec = RunSpec.from_profile("urd", "ci", str(tiny_benchmark), "brick", options)
    return spec, *build_datasets(spec)


def test_training_moves_teacher_and_student_never_the_expert_and_inference_skips_it(tiny_benchmark):
    spec, train, test = _urd_data(tiny_benchmark)
    assert {"image", "synthetic", "mask"} <= set(train[0])
    torch.manual_seed(0)
    method = create_method("urd", **spec.options)
    expert0 = {k: v.clone() for k, v in method.model.expert.state_dict().items()}
    teacher0 = {k: v.clone() for k, v in method.model.teacher.state_dict().items()}
    decoder0 = {k: v.clone() for k, v in method.model.decoder.state_dict().items()}
    out = fit(method, train, cfg=FitConfig(batch_size=3, seed=1, progress=False, device="cpu"))
    assert all("teacher_loss" in h for h in out["history"])
    assert all(torch.equal(v, method.model.expert.state_dict()[k]) for k, v in expert0.items())     # E: bitwise
    assert any(not torch.equal(v, method.model.teacher.state_dict()[k]) for k, v in teacher0.items())
    assert any(not torch.equal(v, method.model.decoder.state_dict()[k]) for k, v in decoder0.items())
    assert not any(k.startswith("model.expert.") for k in method.checkpoint_state())                # E is not saved

    def refuse(*_):
        raise AssertionError("the expert ran at inference")

    method.model.expert.register_forward_pre_hook(refuse)
    amap, score = method.predict(torch.stack([test[i]["image"] for i in range(3)]))
    assert amap.shape == (3, 1, 64, 64) and torch.isfinite(score).all()


def test_plain_teacher_student_variant_freezes_the_teacher_and_needs_no_synthesis(tiny_benchmark):
    spec, train, _ = _urd_data(tiny_benchmark, expert=False, denoising=False)
    assert "synthetic" not in train[0] and spec.data_config().synthesis is None
    method = create_method("urd", **spec.options)
    assert method.model.expert is None and set(method.configure_optimizers(method.stages()[0])) == {"student"}
    teacher0 = {k: v.clone() for k, v in method.model.teacher.state_dict().items()}
    fit(method, train, cfg=FitConfig(batch_size=3, seed=1, progress=False, device="cpu"))
    assert all(torch.equal(v, method.model.teacher.state_dict()[k]) for k, v in teacher0.items())


def test_options_are_validated():
    with pytest.raises(ValueError, match="gii='attention'"):
        create_method("urd", gii="attention", image_size=64)


def test_paper_profile_gives_cable_and_transistor_their_longer_budget(tiny_benchmark):
    from rdlib.methods import method_profile

    assert method_profile("urd", "paper", "cable")["options"]["steps"] == 10000
    assert method_profile("urd", "paper", "transistor")["options"]["steps"] == 10000
    assert method_profile("urd", "paper", "bottle")["options"]["steps"] == 5000
    assert method_profile("urd", "paper")["options"]["steps"] == 5000
    from rdlib.runs import RunSpec                                            # what runs and the CLI build from

    assert RunSpec.from_profile("urd", "paper", str(tiny_benchmark), "cable").options["steps"] == 10000
    assert RunSpec.from_profile("urd", "paper", str(tiny_benchmark), "cable", {"steps": 7}).options["steps"] == 7


class CrashingURD(__import__("rdlib.methods.urd", fromlist=["URDMethod"]).URDMethod):
    def __init__(self, crash_at=0, **kw):
        super().__init__(**kw)
        self.crash_at, self.calls = crash_at, 0

    def training_step(self, batch, optimizers, stage):
        self.calls += 1
        if self.calls == self.crash_at:
            raise Interrupted
        return super().training_step(batch, optimizers, stage)


def test_resume_is_bit_identical_across_both_optimizers(tiny_benchmark, tmp_path):
    """Killed at step 3 of 4 and resumed from the step-2 checkpoint: teacher (weights and BN statistics), student
    and both Adam states end exactly where an uninterrupted run ends."""
    spec, train, _ = _urd_data(tiny_benchmark)
    opts = {**spec.options, "steps": 4}
    cfg = FitConfig(batch_size=3, seed=3, progress=False, device="cpu", checkpoint_every=2)
    torch.manual_seed(0)
    straight = CrashingURD(**opts)
    fit(straight, train, cfg=cfg)
    torch.manual_seed(0)
    crashing = CrashingURD(crash_at=3, **opts)
    with pytest.raises(Interrupted):
        fit(crashing, train, cfg=cfg, run_dir=tmp_path)
    resumed = CrashingURD(**opts)
    fit(resumed, train, cfg=cfg, run_dir=tmp_path)
    a, b = straight.checkpoint_state(), resumed.checkpoint_state()
    assert a.keys() == b.keys() and any(k.startswith("model.teacher.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_cli_trains_and_evaluates_urd_on_any_dataset_root(tiny_benchmark, tmp_path, capsys):
    import json

    from rdlib.__main__ import main

    common = ["--method", "urd", "--data", str(tiny_benchmark), "--category", "coffee", "--profile", "ci",
              "-o", "gii=sa", "--runs-dir", str(tmp_path / "runs")]
    assert main(["train", *common, "--no-progress"]) == 0
    run_dir = capsys.readouterr().out.split("run: ")[1].split("\n")[0]
    config = json.loads((tmp_path.joinpath(run_dir) if not run_dir.startswith("/") else __import__("pathlib").Path(run_dir))
                        .joinpath("config.json").read_text())
    assert config["spec"]["method"] == "urd" and config["spec"]["options"]["gii"] == "sa"
    assert main(["evaluate", *common, "--out", str(tmp_path / "eval")]) == 0
    assert {"i_auroc", "p_auroc", "pro_rd"} <= set(json.loads((tmp_path / "eval/metrics.json").read_text())["metrics"])
