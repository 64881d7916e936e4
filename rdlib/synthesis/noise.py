"""Noise fields for anomaly masks, vectorised over a batch in torch on the batch's device.

* :func:`perlin_noise` — 2-D gradient (Perlin) noise as DRAEM draws it (``rand_perlin_2d_np``): a lattice of
  ``res_y × res_x`` cells with a random unit gradient at every lattice point, fade 6t⁵ − 15t⁴ + 10t³, bilinear
  blend of the four corner dot products, scaled by √2. Every sample of the batch has its own resolution.
* :func:`perlin_masks` — DRAEM's masks: resolution 2^a × 2^b (a, b ~ U{0..5} independently), the noise rotated by a
  random angle in ±90°, thresholded at 0.5.
* :func:`simplex_noise3d` / :func:`simplex_octaves` — 3-D simplex noise (Gustavson's formulation of Perlin's
  simplex noise) and its fractal sum, for RD++'s noise (6 octaves, persistence 0.6, base frequency 32). RD++ uses
  the OpenSimplex variant; both are smooth gradient noise on a simplex lattice with values in about [−1, 1], but
  the lattices differ, so individual values are not the same.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def fade(t: torch.Tensor) -> torch.Tensor:
    return ((6 * t - 15) * t + 10) * t * t * t               # 6t⁵ − 15t⁴ + 10t³


def perlin_from_angles(angles: torch.Tensor, res: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Perlin noise from given lattice gradients.

    angles: B×(R+1)×(R+1) gradient angles (only the first res_y+1 rows / res_x+1 columns of sample b are used);
    res: B×2 integer cell counts (res_y, res_x), each dividing nothing in particular (any size works).
    Returns B×H×W. Pixel (i, j) sits at lattice coordinate (i·res_y/H, j·res_x/W), as in DRAEM's ``mgrid``.
    """
    b = angles.shape[0]
    dev = angles.device
    ry = res[:, 0].to(dev, torch.float32).view(b, 1, 1)
    rx = res[:, 1].to(dev, torch.float32).view(b, 1, 1)
    yy = torch.arange(height, device=dev, dtype=torch.float32).view(1, height, 1) * ry / height
    xx = torch.arange(width, device=dev, dtype=torch.float32).view(1, 1, width) * rx / width
    iy, ix = yy.floor(), xx.floor()
    fy, fx = (yy - iy).expand(b, height, width), (xx - ix).expand(b, height, width)
    iy, ix = iy.long().expand(b, height, width), ix.long().expand(b, height, width)
    n = angles.shape[-1]
    flat = angles.reshape(b, -1)

    def corner(dy: int, dx: int) -> torch.Tensor:          # gradient at lattice point (iy+dy, ix+dx) · offset
        a = flat.gather(1, ((iy + dy) * n + (ix + dx)).reshape(b, -1)).view(b, height, width)
        return torch.cos(a) * (fy - dy) + torch.sin(a) * (fx - dx)

    ty, tx = fade(fy), fade(fx)
    n0 = torch.lerp(corner(0, 0), corner(1, 0), ty)        # DRAEM blends along rows first, then columns
    n1 = torch.lerp(corner(0, 1), corner(1, 1), ty)
    return math.sqrt(2) * torch.lerp(n0, n1, tx)


def perlin_noise(batch: int, height: int, width: int, res: torch.Tensor, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """B×H×W Perlin noise with per-sample resolution ``res`` (B×2), gradients drawn from ``generator``."""
    r = int(res.max().item()) + 1
    angles = 2 * math.pi * torch.rand(batch, r, r, generator=generator).to(device)
    return perlin_from_angles(angles, res, height, width)


def rotate(maps: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate B×H×W maps about their centre by per-sample angles (bilinear, zeros outside), like imgaug's Affine."""
    b, h, w = maps.shape
    th = degrees.to(maps.device, torch.float32) * math.pi / 180
    cos, sin = torch.cos(th), torch.sin(th)
    theta = torch.zeros(b, 2, 3, device=maps.device)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin * h / w, sin * w / h, cos
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    return F.grid_sample(maps[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


def perlin_masks(batch: int, height: int, width: int, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu", min_scale: int = 0, max_scale: int = 5,
                 threshold: float = 0.5, rotation: float = 90.0) -> torch.Tensor:
    """DRAEM masks: B×1×H×W in {0, 1}. Scales 2^a × 2^b, a, b ~ U{min..max}; rotation U(±rotation)°; noise > 0.5."""
    exps = torch.randint(min_scale, max_scale + 1, (batch, 2), generator=generator)
    res = 2 ** exps
    noise = perlin_noise(batch, height, width, res, generator, device)
    angle = (torch.rand(batch, generator=generator) * 2 - 1) * rotation
    noise = rotate(noise, angle)
    return (noise > threshold).float()[:, None]


# --------------------------------------------------------------------------------------------------- simplex
_GRAD3 = torch.tensor([[1, 1, 0], [-1, 1, 0], [1, -1, 0], [-1, -1, 0], [1, 0, 1], [-1, 0, 1], [1, 0, -1],
                       [-1, 0, -1], [0, 1, 1], [0, -1, 1], [0, 1, -1], [0, -1, -1]], dtype=torch.float32)
_F3, _G3 = 1.0 / 3.0, 1.0 / 6.0


def simplex_noise3d(points: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """3-D simplex noise at ``points`` (…×3), with a permutation table ``perm`` (512 ints: a permutation of 0..255,
    repeated). Values in about [−1, 1] (Gustavson's scaling 32)."""
    dev = points.device
    grad, perm = _GRAD3.to(dev), perm.to(dev)
    p = points.float()
    s = p.sum(-1, keepdim=True) * _F3                        # skew into the simplex lattice
    ijk = torch.floor(p + s)
    t = ijk.sum(-1, keepdim=True) * _G3
    x0 = p - (ijk - t)                                       # offset from the cell origin (unskewed)
    # which of the six tetrahedra: rank the coordinates of x0
    order = torch.argsort(x0, dim=-1, descending=True)
    e = torch.eye(3, device=dev)
    o1 = e[order[..., 0]]
    o2 = o1 + e[order[..., 1]]
    offsets = [torch.zeros_like(x0), o1, o2, torch.ones_like(x0)]
    ii = ijk.long() & 255
    total = torch.zeros(p.shape[:-1], device=dev)
    for k, off in enumerate(offsets):
        xk = x0 - off + k * _G3
        idx = ii + off.long()
        gi = perm[idx[..., 0] + perm[idx[..., 1] + perm[idx[..., 2]]]] % 12
        tk = (0.6 - (xk * xk).sum(-1)).clamp_min(0)
        total = total + tk ** 4 * (grad[gi] * xk).sum(-1)
    return 32.0 * total


def random_permutation(generator: torch.Generator | None = None) -> torch.Tensor:
    perm = torch.randperm(256, generator=generator)
    return torch.cat([perm, perm])


def simplex_octaves(shape: tuple[int, int, int], octaves: int = 6, persistence: float = 0.6, frequency: float = 32.0,
                    generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """Fractal 3-D simplex noise on a (D, H, W) grid: Σ_o persistence^o · noise(2^o · frequency · x) / Σ persistence^o,
    with x the grid coordinates divided by H (RD++: D = 3 colour channels, 6 octaves, persistence 0.6)."""
    d, h, w = shape
    perm = random_permutation(generator)
    zz, yy, xx = torch.meshgrid(*(torch.arange(n, device=device, dtype=torch.float32) for n in (d, h, w)), indexing="ij")
    base = torch.stack([zz, yy, xx], -1) / max(h, w)
    out = torch.zeros(shape, device=device)
    amp, norm, freq = 1.0, 0.0, frequency
    for _ in range(octaves):
        out = out + amp * simplex_noise3d(base * freq, perm)
        norm += amp
        amp *= persistence
        freq *= 2
    return out / norm
