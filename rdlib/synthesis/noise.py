"""Noise fields for anomaly masks, vectorised over a batch in torch on the batch's device.

* :func:`perlin_noise` — 2-D gradient (Perlin) noise as DRAEM draws it (``rand_perlin_2d_np``): a lattice of
  ``res_y × res_x`` cells with a random unit gradient at every lattice point, fade 6t⁵ − 15t⁴ + 10t³, bilinear
  blend of the four corner dot products, scaled by √2. Every sample of the batch has its own resolution.
* :func:`perlin_masks` — DRAEM's masks: resolution 2^a × 2^b (a, b ~ U{0..5} independently), the noise rotated by a
  random angle in ±90°, thresholded at 0.5.
* :func:`simplex_octaves` — RD++'s noise: the fractal sum (6 octaves, persistence 0.6, a first octave 32 px
  wide) of 3-D OpenSimplex noise from the ``opensimplex`` package, the lattice RD++'s dataset uses.
"""
from __future__ import annotations

import math

import numpy as np
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
def simplex_octaves(shape: tuple[int, int, int], octaves: int = 6, persistence: float = 0.6, frequency: float = 32.0,
                    generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """Fractal 3-D OpenSimplex noise on a (D, H, W) grid, summed as RD++'s ``rand_3d_octaves`` sums it::

        noise(c) = Σ_o persistence^o · opensimplex(c / (frequency / 2^o))      (c: integer channel, row, column)

    The lattice is the ``opensimplex`` package's, the one RD++'s dataset uses, seeded from ``generator``: with the
    same seed the values equal the official ones (the equivalence harness checks this). The first octave varies over
    ``frequency`` (32) pixels, each further octave twice as fast; the amplitudes are not normalised. On RD++'s
    10–31 px boxes the noise is therefore smooth and nearly the same in the three colour channels (D = 3 sits within
    one lattice cell): a tinted blotch, not pixel noise. RD++ seeds one lattice per dataset; here every call draws its
    own seed (a different blotch for every synthesised image)."""
    from opensimplex import OpenSimplex

    seed = int(torch.randint(-2 ** 62, 2 ** 62, (1,), generator=generator))
    threads = torch.get_num_threads()
    try:
        noise = octave_sum(OpenSimplex(seed), shape, octaves, persistence, frequency)
    finally:
        # opensimplex's numba-parallel loops run on OpenMP and reset its thread count, which torch shares: a
        # one-thread worker would train on as many threads as there are cores, and its sums would change order
        # (RD++ runs stopped being reproducible). Put torch's count back.
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return torch.from_numpy(noise).float().to(device)


def octave_sum(lattice, shape: tuple[int, int, int], octaves: int, persistence: float, frequency: float) -> np.ndarray:
    """Σ_o persistence^o · lattice.noise3array(x / f_o, y / f_o, z / f_o), f_o = frequency / 2^o → D×H×W float64."""
    d, h, w = shape
    out = np.zeros(shape)
    amp, freq = 1.0, float(frequency)
    for _ in range(octaves):
        out += amp * lattice.noise3array(np.arange(w) / freq, np.arange(h) / freq, np.arange(d) / freq)
        amp *= persistence
        freq /= 2
    return out
