import pytest
import torch
import torch.nn.functional as F

from rdlib.losses import cosine_loss_flatten, cosine_loss_pixel
from rdlib.methods.rd.loss import rd_loss as distillation_loss


def pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    t = [torch.randn(3, c, r, r, generator=g) for c, r in ((4, 8), (6, 4), (8, 2))]
    s = [x + torch.randn(x.shape, generator=g) for x in t]
    return t, s


def test_flatten_is_one_cosine_per_map():
    t, s = pair()
    manual = sum((1 - F.cosine_similarity(a.reshape(3, -1), b.reshape(3, -1))).mean() for a, b in zip(t, s))
    assert torch.allclose(cosine_loss_flatten(t, s), manual)


def test_pixel_is_the_mean_per_pixel_cosine_distance_by_loops():
    """Eq. 1–2 of the RD paper written out pixel by pixel: Σ_k mean over (b, h, w) of 1 − cos(t[b, :, h, w], s[b, :, h, w])."""
    t, s = pair()
    manual = 0.0
    for a, b in zip(t, s):
        n, _, h, w = a.shape
        vals = [1 - torch.dot(a[i, :, y, x], b[i, :, y, x]) / (a[i, :, y, x].norm() * b[i, :, y, x].norm())
                for i in range(n) for y in range(h) for x in range(w)]
        manual += float(torch.stack(vals).mean())
    assert float(cosine_loss_pixel(t, s)) == pytest.approx(manual, rel=1e-5)


@pytest.mark.parametrize("mode", ["flatten", "pixel"])
def test_properties(mode):
    t, s = pair()
    assert distillation_loss(t, t, mode).abs() < 1e-5                                   # identical → 0
    scaled = [3.5 * x for x in s]
    assert torch.allclose(distillation_loss(t, s, mode), distillation_loss(t, scaled, mode), atol=1e-6)
    assert 0 < distillation_loss(t, s, mode) < 2 * len(t)


def test_losses_differ_when_pixel_norms_vary():
    """The flattened loss weights pixels by their norm; the per-pixel loss does not."""
    t, s = pair()
    w = [torch.rand(3, 1, x.shape[2], x.shape[3]) * 10 for x in t]
    tw, sw = [a * m for a, m in zip(t, w)], [b * m for b, m in zip(s, w)]
    assert torch.allclose(cosine_loss_pixel(t, s), cosine_loss_pixel(tw, sw), atol=1e-5)
    assert not torch.allclose(cosine_loss_flatten(t, s), cosine_loss_flatten(tw, sw), atol=1e-3)


def test_unknown_loss():
    with pytest.raises(ValueError, match="choose from"):
        distillation_loss([], [], "l2")
