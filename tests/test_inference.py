"""The inference fast path: BN folding on hand cases, every method's maps through the fast path equal to the plain
path, a lying module order caught by the check, torch.compile's check and fallback, and how freeze() interacts with
predict, scoring, training and checkpoints."""
import pytest
import torch
from torch import nn

from rdlib.inference import fold_batchnorm, fold_conv_bn, optimize_for_inference
from rdlib.methods import create_method, list_methods, method_class

# the methods rdlib ships (other tests register toy methods in the same registry)
SHIPPED = sorted(m for m in list_methods() if method_class(m).__module__.startswith("rdlib.methods."))


def _random_bn_stats(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_folding_a_conv_and_a_transposed_conv_on_hand_cases():
    conv = nn.Conv2d(1, 2, 1, bias=True)
    conv.weight.data = torch.tensor([[[[2.0]]], [[[-1.0]]]])
    conv.bias.data = torch.tensor([1.0, 0.0])
    bn = nn.BatchNorm2d(2, eps=0.0).eval()
    bn.running_mean.copy_(torch.tensor([1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0]))
    bn.weight.data = torch.tensor([3.0, 1.0])
    bn.bias.data = torch.tensor([0.5, -1.0])
    x = torch.tensor([[[[1.0, 2.0]]]])
    # channel 0: (2x + 1 − 1)/2·3 + 0.5 = 3x + 0.5;  channel 1: (−x − 2)/1·1 − 1 = −x − 3
    expected = torch.tensor([[[[3.5, 6.5]], [[-4.0, -5.0]]]])
    assert torch.allclose(bn(conv(x)), expected)
    conv = fold_conv_bn(conv.eval(), bn)
    assert torch.allclose(conv(x), expected)
    assert torch.allclose(conv.weight.flatten(), torch.tensor([3.0, -1.0])) and torch.allclose(conv.bias, torch.tensor([0.5, -3.0]))
    tconv = nn.ConvTranspose2d(2, 3, 2, stride=2, bias=False)
    tbn = nn.BatchNorm2d(3).eval()
    _random_bn_stats(tbn)
    y = torch.randn(1, 2, 3, 3)
    ref = tbn(tconv(y))
    assert torch.allclose(fold_conv_bn(tconv.eval(), tbn)(y), ref, atol=1e-6)


def test_the_shipped_methods_are_the_six_packages():
    assert SHIPPED == ["aand", "patch_knn", "rd", "rdpp", "rdre", "urd"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_method_predicts_the_same_maps_through_the_fast_path(name):
    torch.manual_seed(0)
    method = create_method(name, image_size=64, weights="random").eval()
    _random_bn_stats(method)
    if name == "patch_knn":
        method.model.memory = torch.randn(50, method.model.memory.shape[1])
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    plain_map, plain_score = method.predict(x)
    report = method.freeze(compile=False)
    assert report.folded > 0 and report.channels_last and report.max_error <= 1e-4, report
    assert not any(isinstance(m, nn.BatchNorm2d) for m in method.__dict__["_fast_path"].model.teacher.modules())
    fast_map, fast_score = method.predict(x)
    assert torch.allclose(fast_map, plain_map, atol=1e-4) and torch.allclose(fast_score, plain_score, atol=1e-4)
    assert fast_map.is_contiguous()


class _Liar(nn.Module):
    """Registers conv before bn but applies bn first: registration order is not execution order."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(self.bn(x))
        return y.mean(1, keepdim=True), y.flatten(1).amax(1)


class _Holder:
    def __init__(self, model):
        self.model = model


def test_a_fold_that_changes_the_output_is_caught_and_not_used():
    liar = _Liar().eval()
    _random_bn_stats(liar)
    fast = optimize_for_inference(_Holder(liar), image_size=8, compile=False)
    assert fast.report.folded == 0 and "folding not used" in fast.report.notes[0]
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(fast(x)[0], liar(x)[0], atol=1e-6)
    assert isinstance(liar.bn, nn.BatchNorm2d)                           # the original is never modified


def test_compile_is_checked_and_falls_back(monkeypatch):
    method = create_method("rd", image_size=64, weights="random").eval()

    def broken(*a, **k):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    fast = optimize_for_inference(method, compile=True)
    assert not fast.report.compiled and "torch.compile failed (RuntimeError: no compiler here)" in fast.report.notes[0]

    def wrong(model, **k):                                               # a "compiled" model with a wrong answer
        return lambda x: tuple(t + 1 for t in model(x))

    monkeypatch.setattr(torch, "compile", wrong)
    fast = optimize_for_inference(method, compile=True)
    assert not fast.report.compiled and "off by" in fast.report.notes[0]
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(fast(x)[0], method.predict(x)[0], atol=1e-4)
    auto = optimize_for_inference(method)                                # auto: CUDA only
    assert not auto.report.compiled and auto.report.notes == []


def test_freeze_leaves_the_state_alone_and_is_dropped_by_training_scoring_and_loading():
    method = create_method("rd", image_size=64, weights="random").eval()
    keys = set(method.state_dict())
    method.freeze(compile=False)
    assert set(method.state_dict()) == keys                             # the fast copy is not a submodule
    calls = []
    fast = method.__dict__["_fast_path"]
    fast.register_forward_hook(lambda *a: calls.append(1))
    x = torch.rand(1, 3, 64, 64)
    method.predict(x)
    assert calls == [1]
    with method.scoring(levels=(0,)):                                    # a scoring block takes the plain path
        m0, _ = method.predict(x)
    assert calls == [1]
    method.predict(x)
    assert calls == [1, 1]
    state = method.checkpoint_state()
    method.load_checkpoint_state(state)
    assert method.__dict__["_fast_path"] is None
    method.freeze(compile=False)
    method.train()
    assert method.__dict__["_fast_path"] is None
