"""RD architecture: exact parameter counts derived by hand from the official RD4AD code's OCBE (``resnet.py``: ``BN_layer``) and decoder (``de_resnet.py``)."""
import pytest
import torch

from rdlib.methods import create_method, get_model


def conv(k, cin, cout):
    return k * k * cin * cout


def bn(c):
    return 2 * c


def bottleneck(cin, planes, width, shortcut, up=False):
    """1×1 cin→width, 3×3 (or ConvT 2×2) width→width, 1×1 width→4·planes, optional projection shortcut."""
    out = 4 * planes
    n = conv(1, cin, width) + bn(width) + (conv(2, width, width) if up else conv(3, width, width)) + bn(width)
    n += conv(1, width, out) + bn(out)
    if shortcut:
        n += (conv(2, cin, out) if up else conv(1, cin, out)) + bn(out)
    return n


def basic(cin, planes, shortcut, up=False):
    n = (conv(2, cin, planes) if up else conv(3, cin, planes)) + bn(planes) + conv(3, planes, planes) + bn(planes)
    if shortcut:
        n += (conv(2, cin, planes) if up else conv(1, cin, planes)) + bn(planes)
    return n


def expected(name):
    if name in ("wide_resnet50_2", "resnet50"):
        m = 2 if name == "wide_resnet50_2" else 1                 # width_per_group 128 doubles inner widths
        mff = conv(3, 256, 512) + bn(512) + conv(3, 512, 1024) + bn(1024) + conv(3, 512, 1024) + bn(1024)
        oce = bottleneck(3072, 512, 512 * m, True) + 2 * bottleneck(2048, 512, 512 * m, False)
        dec = 0
        for cin, planes, blocks in ((2048, 256, 3), (1024, 128, 4), (512, 64, 6)):
            dec += bottleneck(cin, planes, planes * m, True, up=True)
            dec += (blocks - 1) * bottleneck(4 * planes, planes, planes * m, False)
        return mff + oce, dec
    mff = conv(3, 64, 128) + bn(128) + conv(3, 128, 256) + bn(256) + conv(3, 128, 256) + bn(256)
    oce = basic(768, 512, True) + basic(512, 512, False)
    dec = sum(basic(cin, p, True, up=True) + basic(p, p, False) for cin, p in ((512, 256), (256, 128), (128, 64)))
    return mff + oce, dec


@pytest.mark.parametrize("name", ["wide_resnet50_2", "resnet50", "resnet18"])
def test_exact_parameter_counts(name):
    m = get_model("rd", teacher=name, weights="random")
    ocbe, dec = expected(name)
    assert sum(p.numel() for p in m.bottleneck.parameters()) == ocbe
    assert sum(p.numel() for p in m.decoder.parameters()) == dec


def test_wrn_shapes_at_256():
    m = get_model("rd", teacher="wide_resnet50_2", weights="random").eval()
    with torch.no_grad():
        t = m.teacher(torch.rand(1, 3, 256, 256))
        phi = m.bottleneck(t)
        s = m.decoder(phi)
    assert tuple(phi.shape) == (1, 2048, 8, 8)
    assert [tuple(x.shape) for x in s] == [(1, 256, 64, 64), (1, 512, 32, 32), (1, 1024, 16, 16)]


@pytest.mark.parametrize("variant", ["oce+mff", "oce", "pre"])
def test_lite0_variants_reproduce_teacher_shapes_and_follow_the_model_contract(variant):
    m = get_model("rd", bottleneck=variant, image_size=64)
    x = torch.rand(2, 3, 64, 64)
    t, s = m.train()(x)                                          # training: features
    assert [a.shape for a in t] == [b.shape for b in s]
    amap, score = m.eval()(x)                                    # evaluation: (map, score)
    assert amap.shape == (2, 1, 64, 64) and score.shape == (2,)
    assert torch.allclose(score, amap.flatten(1).amax(1))


def test_a_training_step_changes_the_student_and_leaves_the_teacher_bitwise_unchanged():
    """Weights and BatchNorm running statistics of the teacher survive real optimisation steps (its BN stays in
    eval mode); the bottleneck and decoder do change."""
    from rdlib.training import set_train_modes

    torch.manual_seed(0)
    method = create_method("rd", image_size=64)
    opt = method.configure_optimizers(method.stages()[0])
    assert not any(p is q for p in method.model.teacher.parameters() for g in opt["student"].param_groups for q in g["params"])
    teacher0 = {k: v.clone() for k, v in method.model.teacher.state_dict().items()}
    student0 = {k: v.clone() for k, v in method.model.decoder.state_dict().items()}
    set_train_modes(method, method.stages()[0].trains)
    for _ in range(2):
        method.training_step({"image": torch.rand(4, 3, 64, 64)}, opt, method.stages()[0])
    assert all(torch.equal(v, method.model.teacher.state_dict()[k]) for k, v in teacher0.items())
    assert any(not torch.equal(v, method.model.decoder.state_dict()[k]) for k, v in student0.items())


def test_bad_variant():
    with pytest.raises(ValueError, match="bottleneck variant"):
        get_model("rd", bottleneck="big")


def test_teacher_activation_relu_rectifies_what_the_student_and_the_map_see():
    """'relu' applies max(0, ·) to each teacher map (Lite0's signed linear-bottleneck outputs) before the bottleneck,
    the loss and the map; 'none' leaves the teacher's maps exactly as the teacher returns them."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    plain = get_model("rd", image_size=64).eval()
    relu = get_model("rd", image_size=64, teacher_activation="relu").eval()
    relu.load_state_dict(plain.state_dict())                      # same weights: only the activation differs
    raw = plain.teacher(x)
    assert any(bool((f < 0).any()) for f in raw)                  # Lite0's maps are signed
    assert all(torch.equal(a, b) for a, b in zip(plain.encode(x), raw))
    assert all(torch.equal(a, b.clamp_min(0)) for a, b in zip(relu.encode(x), raw))
    t, s = relu.train()(x)
    assert all(bool((f >= 0).all()) for f in t) and [a.shape for a in t] == [b.shape for b in s]


def test_teacher_activation_is_validated_and_is_part_of_the_run_key(tiny_benchmark):
    from rdlib.runs import RunSpec

    with pytest.raises(ValueError, match="teacher_activation='gelu'"):
        get_model("rd", image_size=64, teacher_activation="gelu")
    a = RunSpec.from_profile("rd", "ci", str(tiny_benchmark), "brick", {"teacher_activation": "none"})
    b = RunSpec.from_profile("rd", "ci", str(tiny_benchmark), "brick", {"teacher_activation": "relu"})
    assert a.key() != b.key()


def test_level_distances_are_the_per_image_terms_of_the_flattened_loss():
    """Their batch mean summed over levels is the official loss, computed independently from the feature lists."""
    from rdlib.losses import cosine_loss_flatten

    torch.manual_seed(1)
    m = get_model("rd", image_size=64).eval()
    x = torch.rand(3, 3, 64, 64)
    d = m.level_distances(x)
    assert d.shape == (3, 3) and bool((d >= -1e-6).all()) and bool((d <= 2 + 1e-6).all())
    with torch.no_grad():
        t = m.encode(x)
        s = m.student(t)
    assert torch.allclose(d.mean(0).sum(), cosine_loss_flatten(t, s), atol=1e-6)
    for i in range(3):                                            # one image at a time gives the same row
        ti, si = [f[i:i + 1] for f in t], [f[i:i + 1] for f in s]
        assert torch.allclose(d[i].sum(), cosine_loss_flatten(ti, si), atol=1e-6)
