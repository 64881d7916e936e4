"""Inference cost: parameters of the modules that run, FLOPs against a hand count."""
import torch
from torch import nn

from rdlib.cost import flops, inference_cost, parameters_run


def test_flops_of_a_convolution_and_a_linear_layer_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    x = torch.rand(2, 3, 10, 10)
    assert flops(lambda: conv(x)) == 2 * (2 * 8 * 10 * 10) * (3 * 3 * 3)         # 2 · outputs · (C_in · k²)
    lin = nn.Linear(5, 7)
    assert flops(lambda: lin(torch.rand(4, 5))) == 2 * 4 * 5 * 7


def test_only_the_modules_that_run_are_counted():
    class TwoBranches(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(4, 3), nn.Linear(4, 100)

        def forward(self, x):
            return self.used(x)

    m = TwoBranches()
    assert parameters_run(m, lambda: m(torch.rand(1, 4))) == 4 * 3 + 3


def test_urd_inference_leaves_the_expert_out_of_the_count():
    from rdlib.methods import create_method

    method = create_method("urd", image_size=64)
    cost = inference_cost(method, 64, repeats=1)
    expert = sum(p.numel() for p in method.model.expert.parameters())
    assert abs(cost["params held (M)"] - cost["params run (M)"] - expert / 1e6) < 1e-9
    assert cost["GFLOPs"] > 0 and cost["latency ms (batch 1)"] > 0


def test_a_container_with_its_own_parameters_is_counted():
    """timm's BatchNormAct2d holds weight and bias and has children (act, drop): its parameters run too."""
    class NormAct(nn.BatchNorm2d):
        def __init__(self, c):
            super().__init__(c)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(super().forward(x))

    m = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), NormAct(4)).eval()
    assert parameters_run(m, lambda: m(torch.rand(1, 3, 2, 2))) == 3 * 4 + 2 * 4


def test_peak_memory_counts_tensors_alive_together_not_the_sum_of_all_allocations():
    from rdlib.cost import peak_memory_mb

    def fn():
        a = torch.empty(1_000_000)                  # 4 MB
        b = torch.empty(500_000)                    # + 2 MB alive together: 6 MB
        del a
        c = torch.empty(250_000)                    # 2 + 1 MB: below the peak
        return b, c

    assert abs(peak_memory_mb(fn) - 6.0) < 0.01


def test_peak_memory_of_a_small_network_by_hand():
    """conv → relu → conv on 1×3×64×64, 16 channels: at most two 16×64×64 float maps are alive at once."""
    from rdlib.cost import peak_memory_mb

    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1)).eval()
    x = torch.rand(1, 3, 64, 64)
    one_map = 16 * 64 * 64 * 4 / 1e6
    with torch.no_grad():
        peak = peak_memory_mb(lambda: net(x))
    assert 2 * one_map - 1e-6 <= peak < 2 * one_map + 0.1


def test_weights_mb_counts_parameters_and_buffers():
    from rdlib.cost import weights_mb

    m = nn.BatchNorm2d(10)                          # weight, bias, running mean/var (float32) + num_batches (int64)
    assert weights_mb(m) == (4 * 10 * 4 + 8) / 1e6


def test_training_cost_of_an_rd_step_against_its_forward_pass(tmp_path):
    """One RD step trains the bottleneck and decoder on cached teacher features: forward once, backward computes
    each weight's gradient (as many FLOPs as the forward) and the gradient of every input but the teacher's
    features (at most as many again), so the step costs between 2 and 3 forward passes of the student per image.
    Per image it does not depend on the batch; the memory a step needs grows with it."""
    import sys
    from pathlib import Path

    import pytest

    sys.path.insert(0, str(Path(__file__).parent))
    from trees import write_tree

    from rdlib.cost import training_cost
    from rdlib.methods import create_method, method_profile

    root = write_tree(tmp_path, "mvtec", ["cable"], n_train=8, size=16)
    cost = training_cost("rd", "ci", root, "cable")
    assert list(cost.index) == ["distill"] and cost.loc["distill", "batch"] == 8
    row = cost.loc["distill"]
    opts = {**method_profile("rd", "ci")["options"], "weights": "random"}
    model = create_method("rd", **opts).model.eval()
    x = torch.rand(1, 3, opts["image_size"], opts["image_size"])
    with torch.no_grad():
        feats = model.encode(x)
    forward = flops(lambda: model.student(feats)) / 1e9
    assert 2 * forward < row["training GFLOPs / image"] <= 3 * forward
    trained = sum(p.numel() for part in (model.bottleneck, model.decoder) for p in part.parameters())
    assert row["params trained (M)"] == pytest.approx(trained / 1e6)
    assert row["params held (M)"] == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6)
    half = training_cost("rd", "ci", root, "cable", fit={"batch_size": 4}).loc["distill"]
    assert half["batch"] == 4 and half["training GFLOPs / image"] == pytest.approx(row["training GFLOPs / image"])
    assert 0 < half["step peak MB"] < row["step peak MB"] and half["state MB"] == row["state MB"]


def test_latency_is_timed_on_one_thread_without_the_garbage_collector_and_the_threads_are_restored(monkeypatch):
    import gc

    from rdlib.timing import interleaved_latency_ms, latency_ms

    monkeypatch.setenv("RDLIB_SMOKE", "0")
    seen = []
    probe = lambda: seen.append((torch.get_num_threads(), gc.isenabled()))   # noqa: E731
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        latency_ms(probe, repeats=3, warmup=1)
        assert seen == [(1, True)] + [(1, False)] * 3 and torch.get_num_threads() == 2
        seen.clear()
        interleaved_latency_ms({"a": probe}, repeats=2, warmup=0, threads=None)       # the process's threads
        assert seen == [(2, False)] * 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
