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
