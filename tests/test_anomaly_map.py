import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from rdlib.anomaly_map import (AnomalyMap, bilinear_matrix, blur_matrix, cosine_distance_map, fused_map_reference,
                               gaussian_blur, resolve_backend, upsample_sum_blur)

LEVELS = [(8, 16, 16), (12, 8, 8), (20, 4, 4)]


def feats(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = [torch.randn(batch, c, h, w, generator=g) for c, h, w in LEVELS]
    s = [x + 0.7 * torch.randn(x.shape, generator=g) for x in t]
    return t, s


def test_cosine_distance_matches_torch_cosine_similarity():
    t, s = feats()
    for a, b in zip(t, s):
        assert torch.allclose(cosine_distance_map(a, b)[:, 0], 1 - F.cosine_similarity(a, b, dim=1), atol=1e-6)


def test_zero_vectors_give_distance_one():
    a = torch.randn(1, 5, 3, 3)
    b = a.clone()
    a[0, :, 0, 0] = 0
    b[0, :, 1, 1] = 0
    d = cosine_distance_map(a, b)[0, 0]
    assert d[0, 0] == 1 and d[1, 1] == 1 and torch.allclose(d[2, 2], torch.tensor(0.0), atol=1e-6)


def test_identical_features_give_zero_map():
    t, _ = feats()
    amap, score = AnomalyMap(32)(t, t)
    assert amap.shape == (2, 1, 32, 32) and amap.abs().max() < 1e-5 and score.abs().max() < 1e-5


def test_invariant_to_positive_feature_scaling():
    t, s = feats()
    scaled = [x * torch.rand(x.shape[0], 1, x.shape[2], x.shape[3]).add(0.1) * 7 for x in s]   # per-pixel scale
    a1, _ = AnomalyMap(32)(t, s)
    a2, _ = AnomalyMap(32)(t, scaled)
    assert torch.allclose(a1, a2, atol=1e-5)


def test_gaussian_blur_equals_scipy():
    x = torch.rand(3, 1, 40, 37, dtype=torch.float64)
    ours = gaussian_blur(x, 4.0)[:, 0].numpy()
    ref = np.stack([ndimage.gaussian_filter(a[0].numpy(), 4.0, mode="reflect") for a in x])
    assert np.abs(ours - ref).max() < 1e-12
    # radius (16) larger than a side (10): scipy's reflection repeats; ours must too
    y = torch.rand(1, 1, 10, 50, dtype=torch.float64)
    assert np.abs(gaussian_blur(y)[0, 0].numpy() - ndimage.gaussian_filter(y[0, 0].numpy(), 4.0)).max() < 1e-12


def test_matrices_equal_interpolate_and_blur():
    x = torch.rand(2, 1, 7, 5, dtype=torch.float64)
    up = bilinear_matrix(7, 23) @ x[..., :, :] @ bilinear_matrix(5, 19).T
    assert torch.allclose(up, F.interpolate(x, size=(23, 19), mode="bilinear", align_corners=True), atol=1e-12)
    z = torch.rand(30, 1, dtype=torch.float64)
    assert np.allclose((blur_matrix(30, 2.5) @ z)[:, 0].numpy(), ndimage.gaussian_filter1d(z[:, 0].numpy(), 2.5), atol=1e-12)


@pytest.mark.parametrize("sigma", [0.0, 4.0])
def test_operator_path_equals_reference_pipeline(sigma):
    t, s = feats()
    ours = upsample_sum_blur([cosine_distance_map(a, b) for a, b in zip(t, s)], (64, 48), sigma)
    ref = fused_map_reference(t, s, (64, 48)).double()
    ref = gaussian_blur(ref, sigma) if sigma else ref
    assert (ours - ref).abs().max() < 1e-5


def test_levels_and_score():
    t, s = feats()
    full, score = AnomalyMap(32)(t, s)
    assert torch.allclose(score, full.flatten(1).amax(1))
    only2, _ = AnomalyMap(32, levels=(1,))(t, s)
    ref = gaussian_blur(F.interpolate(cosine_distance_map(t[1], s[1]), size=(32, 32), mode="bilinear", align_corners=True))
    assert (only2 - ref).abs().max() < 1e-5


def test_backend_resolution_on_cpu(monkeypatch):
    x = torch.zeros(1)
    assert resolve_backend("auto", x) == "torch"             # CPU: the PyTorch reference, even with the interpreter
    assert resolve_backend("torch", x) == "torch"
    monkeypatch.setenv("RDLIB_ANOMALY_MAP_BACKEND", "torch")
    assert resolve_backend(None, x) == "torch"
    with pytest.raises(ValueError, match="choose auto, triton or torch"):
        resolve_backend("cuda", x)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="forced but cannot run"):
        resolve_backend("triton", x)


def test_without_triton_the_map_falls_back_and_forcing_it_names_the_reason(monkeypatch):
    import sys

    from rdlib.kernels import triton_supported

    monkeypatch.setitem(sys.modules, "triton", None)          # `import triton` now raises ImportError
    x = torch.randn(1, 4, 8, 8)
    assert triton_supported(x, allow_interpreter=True) == (False, "Triton is not installed")
    assert resolve_backend("auto", x) == "torch"
    amap, _ = AnomalyMap(16)([x], [x.flip(-1)])
    assert torch.isfinite(amap).all() and amap.shape == (1, 1, 16, 16)
    with pytest.raises(RuntimeError, match="Triton is not installed"):
        resolve_backend("triton", x)


@pytest.mark.parametrize("capability,dtype,ok", [
    ((7, 0), torch.float32, False), ((7, 5), torch.float32, True), ((7, 5), torch.float16, True),
    ((7, 5), torch.bfloat16, False), ((8, 0), torch.bfloat16, True), ((9, 0), torch.float16, True),
])
def test_gpu_dispatch_rule(capability, dtype, ok):
    from rdlib.kernels import capability_supported

    got, why = capability_supported(capability, dtype)
    assert got == ok and (ok or why)
