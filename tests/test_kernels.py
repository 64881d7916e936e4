"""Triton cosine-distance kernel vs the PyTorch reference, under TRITON_INTERPRET=1 on the CPU (conftest)."""
import pytest
import torch

from rdlib.anomaly_map import AnomalyMap, cosine_distance_map
from rdlib.kernels import cosine_distance_triton, triton_supported

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-3}   # abs tol on 1 − cos (fp32 accumulation)


def report(name, ours, ref):
    err = (ours - ref).abs()
    rel = err / ref.abs().clamp_min(1e-6)
    print(f"{name}: max abs {err.max().item():.2e}, max rel {rel.max().item():.2e}")
    return err.max().item()


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 37, 13, 21), (3, 300, 9, 11), (2, 64, 1, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_random_shapes(shape, dtype):
    g = torch.Generator().manual_seed(sum(shape))
    t = torch.randn(shape, generator=g).to(dtype)
    s = torch.randn(shape, generator=g).to(dtype)
    ours = cosine_distance_triton(t, s)
    ref = cosine_distance_map(t, s)                     # reference also reads the rounded inputs, fp32 math
    assert ours.dtype == torch.float32 and ours.shape == ref.shape
    assert report(f"{shape} {dtype}", ours, ref) < TOL[dtype]


def test_non_contiguous_inputs():
    t = torch.randn(2, 9, 11, 30).permute(0, 3, 1, 2)     # channels-last style strides
    s = torch.randn(2, 30, 18, 11)[:, :, ::2, :]           # strided rows
    assert not t.is_contiguous() and not s.is_contiguous()
    assert report("non-contiguous", cosine_distance_triton(t, s), cosine_distance_map(t, s)) < 1e-5


def test_zero_vectors_follow_the_epsilon_rule():
    t = torch.randn(1, 16, 4, 4)
    s = t.clone()
    t[0, :, 0, 0] = 0
    s[0, :, 1, 1] = 0
    t[0, :, 2, 2] = 0
    s[0, :, 2, 2] = 0
    d = cosine_distance_triton(t, s)[0, 0]
    assert d[0, 0] == 1 and d[1, 1] == 1 and d[2, 2] == 1
    assert torch.allclose(d, cosine_distance_map(t, s)[0, 0], atol=1e-6)


@pytest.mark.parametrize("levels", [
    [(24, 64, 64), (40, 32, 32), (112, 16, 16)],       # EfficientNet-Lite0 at 256²
    [(256, 64, 64), (512, 32, 32), (1024, 16, 16)],    # WideResNet50-2 at 256²
])
def test_real_level_shapes_through_the_anomaly_map(levels):
    g = torch.Generator().manual_seed(0)
    t = [torch.randn(2, c, h, w, generator=g) for c, h, w in levels]
    s = [x + torch.randn(x.shape, generator=g) for x in t]
    ours, score = AnomalyMap(256, backend="triton")(t, s)
    ref, ref_score = AnomalyMap(256, backend="torch")(t, s)
    assert report("anomaly map", ours, ref) < 1e-5
    assert torch.allclose(score, ref_score, atol=1e-5)


def test_dispatch_reasons():
    ok, why = triton_supported(torch.zeros(1, dtype=torch.float64), allow_interpreter=True)
    assert not ok and "dtype" in why
    ok, why = triton_supported(torch.zeros(1))
    assert not ok and "CPU tensor" in why
    assert triton_supported(torch.zeros(1), allow_interpreter=True)[0]   # interpreter on (conftest)


@pytest.mark.gpu
def test_gpu_kernel_compiles_and_matches():  # pragma: no cover - needs CUDA (run in a process without TRITON_INTERPRET)
    import os

    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("TRITON_INTERPRET=1 interprets every kernel; run GPU tests with TRITON_INTERPRET=0")
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        t = torch.randn(8, 256, 64, 64, device="cuda").to(dtype)
        s = torch.randn(8, 256, 64, 64, device="cuda").to(dtype)
        if triton_supported(t)[0]:
            assert (cosine_distance_triton(t, s) - cosine_distance_map(t, s)).abs().max() < TOL[dtype]
