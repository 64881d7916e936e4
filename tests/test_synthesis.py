"""Anomaly synthesis against slow references, hand-computed cases, PIL, and statistical bounds."""
import hashlib
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps
from torch.utils.data import DataLoader

from rdlib.data import find_texture_source, load_split
from rdlib.synthesis import (AUGMENTERS, PRESETS, SyntheticAnomalies, draem_blend, get_preset, perlin_from_angles,
                             synthesize)
from rdlib.synthesis.foreground import aand_foreground, otsu_threshold
from rdlib.synthesis.noise import octave_sum, simplex_octaves
from rdlib.synthesis.presets import SynthesisPreset


# ------------------------------------------------------------------------------------------ slow references
def perlin_reference(angles: np.ndarray, res: tuple[int, int], h: int, w: int) -> np.ndarray:
    """Per-pixel gradient-lattice interpolation, written out."""
    out = np.zeros((h, w))
    f = lambda t: 6 * t ** 5 - 15 * t ** 4 + 10 * t ** 3          # noqa: E731
    for i in range(h):
        for j in range(w):
            u, v = i * res[0] / h, j * res[1] / w
            ci, cj = int(math.floor(u)), int(math.floor(v))
            fu, fv = u - ci, v - cj
            corners = {}
            for di in (0, 1):
                for dj in (0, 1):
                    a = angles[ci + di, cj + dj]
                    corners[di, dj] = math.cos(a) * (fu - di) + math.sin(a) * (fv - dj)
            top = corners[0, 0] + f(fu) * (corners[1, 0] - corners[0, 0])
            bottom = corners[0, 1] + f(fu) * (corners[1, 1] - corners[0, 1])
            out[i, j] = math.sqrt(2) * (top + f(fv) * (bottom - top))
    return out


GRAD3 = [(1, 1, 0), (-1, 1, 0), (1, -1, 0), (-1, -1, 0), (1, 0, 1), (-1, 0, 1), (1, 0, -1), (-1, 0, -1),
         (0, 1, 1), (0, -1, 1), (0, 1, -1), (0, -1, -1)]


def test_perlin_matches_the_per_pixel_reference():
    g = torch.Generator().manual_seed(0)
    angles = 2 * math.pi * torch.rand(3, 9, 9, generator=g, dtype=torch.float64).float()
    res = torch.tensor([[2, 4], [8, 1], [1, 1]])
    ours = perlin_from_angles(angles, res, 16, 24)
    for b in range(3):
        ref = perlin_reference(angles[b].double().numpy(), tuple(res[b].tolist()), 16, 24)
        assert np.abs(ours[b].numpy() - ref).max() < 1e-5


def test_simplex_octaves_sum_as_rdpp_does():
    """RD++'s rand_3d_octaves: octave o samples OpenSimplex at c / (32 / 2^o), amplitude 0.6^o, no normalisation;
    checked point by point against the package's scalar noise3 (c = channel, row, column)."""
    from opensimplex import OpenSimplex

    lattice = OpenSimplex(1234)
    grid = octave_sum(lattice, (3, 5, 7), 2, 0.6, 32.0)
    for z, y, x in [(0, 0, 0), (2, 4, 6), (1, 3, 2)]:
        ref = lattice.noise3(x / 32, y / 32, z / 32) + 0.6 * lattice.noise3(x / 16, y / 16, z / 16)
        assert grid[z, y, x] == pytest.approx(ref, abs=1e-12)
    a = simplex_octaves((3, 8, 8), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, simplex_octaves((3, 8, 8), generator=torch.Generator().manual_seed(1)))   # seeded



def test_rdpp_noise_is_a_smooth_tinted_blotch():
    """On RD++'s boxes (10–31 px) the noise varies slowly and the three colour channels nearly agree (the official
    noise: neighbour correlation about 0.9, channel correlation about 0.95); white noise would give about 0."""
    g = torch.Generator().manual_seed(0)
    lag, chan = [], []
    for _ in range(40):
        n = simplex_octaves((3, 24, 24), generator=g)
        a, b = n[:, :, :-1].flatten(), n[:, :, 1:].flatten()
        lag.append(float(torch.corrcoef(torch.stack([a, b]))[0, 1]))
        chan.append(float(torch.corrcoef(n.flatten(1))[0, 1]))
    assert np.mean(lag) > 0.8 and np.mean(chan) > 0.8


def test_blend_formula_on_a_hand_computed_case():
    image = torch.full((1, 3, 1, 2), 0.2)
    texture = torch.full((1, 3, 1, 2), 1.0)
    mask = torch.tensor([[[[1.0, 0.0]]]])
    out = draem_blend(image, texture, mask, torch.tensor([0.25]))
    # inside: 0.2·0 + 0.75·1 + 0.25·0.2 = 0.8; outside: the image
    assert torch.allclose(out[0, :, 0, 0], torch.tensor(0.8)) and torch.allclose(out[0, :, 0, 1], torch.tensor(0.2))


@pytest.mark.parametrize("name", ["draem", "urd", "aand", "rdre"])
def test_masks_are_binary_and_the_kept_share_stays_in_its_range(name):
    preset = get_preset(name)
    g = torch.Generator().manual_seed(1)
    images = torch.zeros(64, 3, 32, 32)
    out, masks = synthesize(images, torch.ones(64, 3, 32, 32), None, preset, g)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    inside = masks[:, 0] > 0
    keep = 1 - out[:, 0][inside]                               # texture 1, image 0: value = 1 − β
    lo, hi = preset.keep_range
    assert keep.numel() > 0 and keep.min() >= lo - 1e-6 and keep.max() <= hi + 1e-6
    assert torch.all(out[:, :, ~inside.any(0)] == 0)           # nothing changes outside the masks


def test_anomalous_fraction_matches_p_within_a_binomial_bound():
    n = 1200
    images, textures = torch.zeros(n, 3, 16, 16), torch.ones(n, 3, 16, 16)
    always = SynthesisPreset("always", p_anomalous=1.0)
    half = SynthesisPreset("half", p_anomalous=0.5)
    q1 = synthesize(images, textures, None, always, torch.Generator().manual_seed(5))[1].flatten(1).any(1).float().mean()
    q2 = synthesize(images, textures, None, half, torch.Generator().manual_seed(6))[1].flatten(1).any(1).float().mean()
    p = q2 / q1                                                # P(non-empty) = p · P(Perlin mask non-empty)
    sd = math.sqrt(0.5 * 0.5 / (n * q1.item()))
    assert abs(p.item() - 0.5) < 4 * sd + 0.02


def test_masks_stay_inside_the_foreground():
    fg = torch.zeros(8, 1, 32, 32)
    fg[:, :, 8:24, 8:24] = 1
    _, masks = synthesize(torch.zeros(8, 3, 32, 32), torch.ones(8, 3, 32, 32), fg, get_preset("urd"),
                          torch.Generator().manual_seed(2))
    assert masks.sum() > 0 and torch.all(masks <= fg)


def test_aand_foreground_rules_name_their_categories():
    img = np.zeros((40, 40, 3), np.uint8)
    img[10:30, 10:30] = 200
    assert aand_foreground(img, "bottle").sum() == aand_foreground(img, "cable").sum() > 0     # both disks
    assert aand_foreground(img, "carpet").all() or aand_foreground(img, "carpet").sum() > 0
    assert aand_foreground(img, "hazelnut")[20, 20] and not aand_foreground(img, "hazelnut")[0, 0]
    assert aand_foreground(img, "unknown_category") is None
    assert otsu_threshold(np.r_[np.full(50, 10), np.full(50, 200)]) in range(10, 200)


# ------------------------------------------------------------------------------------------------- augmenters
def _img(seed=0, h=24, w=20):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, h, w), dtype=np.uint8))


def _pil(x):
    return Image.fromarray(x.permute(1, 2, 0).numpy())


def _back(im):
    return torch.from_numpy(np.array(im)).permute(2, 0, 1)


@pytest.mark.parametrize("name, pil", [
    ("invert", ImageOps.invert),
    ("autocontrast", ImageOps.autocontrast),
    ("equalize", ImageOps.equalize),
])
def test_parameter_free_augmenters_equal_pil(name, pil):
    x = _img()
    assert torch.equal(AUGMENTERS[name](x, torch.Generator()), _back(pil(_pil(x))))


def test_parametrised_augmenters_equal_pil_for_the_drawn_parameter():
    x = _img(1)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    th = float(torch.randint(32, 129, (1,), generator=g2))
    assert torch.equal(AUGMENTERS["solarize"](x, g1), _back(ImageOps.solarize(_pil(x), th)))
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    bits = int(torch.randint(4, 9, (1,), generator=g2))
    assert torch.equal(AUGMENTERS["posterize"](x, g1), _back(ImageOps.posterize(_pil(x), bits)))
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    factor = (2.0 * torch.rand(1, generator=g2)).item()
    ours, ref = AUGMENTERS["sharpness"](x, g1), _back(ImageEnhance.Sharpness(_pil(x)).enhance(factor))
    assert (ours.int() - ref.int()).abs().max() <= 1


def test_rotation_equals_pil_nearest_rotation():
    x = _img(3, 21, 21)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    angle = (-45.0 + 90.0 * torch.rand(1, generator=g2)).item()
    ours = AUGMENTERS["rotate"](x, g1)
    ref = _back(_pil(x).rotate(angle, resample=Image.NEAREST))
    assert (ours != ref).any(0).float().mean() < 0.02          # the same pixels, up to ties on the sampling grid


def test_every_augmenter_keeps_shape_and_dtype():
    x = _img(2)
    for name, fn in AUGMENTERS.items():
        y = fn(x, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and y.dtype == torch.uint8, name


# ---------------------------------------------------------------------------------- the dataset wrapper
def test_dataset_items_are_deterministic_across_workers_and_epochs(tiny_benchmark):
    base = load_split(tiny_benchmark, "coffee", "train", 32)
    ds = SyntheticAnomalies(base, "aand", find_texture_source(allow=("procedural",)), "coffee")
    batches = []
    for workers in (0, 2):
        ds.set_epoch(11)
        loader = DataLoader(ds, batch_size=3, sampler=[4, 1, 0, 5, 2, 3], num_workers=workers)
        batches.append([b["synthetic"] for b in loader])
    assert all(torch.equal(a, b) for a, b in zip(*batches))
    ds.set_epoch(12)
    assert not torch.equal(ds[4]["synthetic"], batches[0][0][0])           # another epoch, another draw
    assert ds.texture_source == "procedural"


def test_rdpp_items_carry_no_mask_and_change_one_box(tiny_benchmark):
    base = load_split(tiny_benchmark, "brick", "train", 64)
    item = SyntheticAnomalies(base, "rdpp", None, "brick")[0]
    assert "mask" not in item
    changed = (item["synthetic"] != item["image"]).any(0)
    ys, xs = np.nonzero(changed.numpy())
    assert 10 <= np.ptp(ys) + 1 <= 32 and 10 <= np.ptp(xs) + 1 <= 32


def test_rdpp_noise_is_added_without_clipping_as_the_official_dataset_does():
    """On a white image every positive noise value leaves [0, 1]; the official RD++ dataset keeps it (no clip), so
    the synthetic image is exactly image + 0.2 × noise inside the box."""
    images = torch.ones(1, 3, 48, 48)
    g = torch.Generator().manual_seed(3)
    out, masks = synthesize(images, None, None, get_preset("rdpp"), g)
    box = masks[0, 0] > 0
    assert box.any() and out.max() > 1.0                       # values above 1 survive
    assert torch.equal(out[:, :, ~box], images[:, :, ~box])    # outside the box nothing changes


def test_perlin_presets_need_textures(tiny_benchmark):
    with pytest.raises(ValueError, match="blends textures"):
        SyntheticAnomalies(load_split(tiny_benchmark, "brick", "train", 32), "draem", None)


def test_unreadable_texture_folder_is_a_clear_error(tmp_path):
    (tmp_path / "images" / "x").mkdir(parents=True)
    (tmp_path / "images" / "x" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "images")):
        find_texture_source(tmp_path)


def test_training_textures_are_disjoint_from_every_embedded_source():
    """Synthetic training anomalies must not be made of a category's photo or of a test-defect source."""
    from rdlib.data.embedded import CATEGORIES, FOREIGN_SOURCES, load_source
    from rdlib.data.textures import SKIMAGE_PHOTOS

    used = {spec.source for spec in CATEGORIES.values()} | set(FOREIGN_SOURCES)
    assert not used & set(SKIMAGE_PHOTOS)
    digest = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()   # noqa: E731
    test_side = {digest((load_source(n) * 255).round().astype(np.uint8)) for n in used}
    src = find_texture_source(allow=("skimage",))
    assert src.name == "skimage" and len(src.images) >= 10
    assert not {digest(np.asarray(a, np.uint8)) for a in src.images} & test_side
    book = find_texture_source()                                # what the book uses here (Debian packages or this)
    assert not {digest(np.asarray(a, np.uint8)) for a in book.images} & test_side
    assert set(PRESETS) >= {"draem", "urd", "aand", "rdre", "rdpp"}


# ------------------------------------------------------------------------ through the loop and the run store
from torch import nn  # noqa: E402

from rdlib.methods import DataConfig, Method, Stage, register_method  # noqa: E402
from rdlib.training import FitConfig, fit  # noqa: E402


class Interrupted(Exception):
    pass


@register_method("synth_probe", profiles={"ci": {"options": {}, "fit": {"batch_size": 2, "seed": 3}}})
class SynthProbe(Method):
    """Records what synthetic batches it sees; trains a 1×1 conv on them (so resume has weights to compare)."""

    def __init__(self, image_size: int = 32, steps: int = 6, crash_at: int = 0):
        super().__init__()
        self.model = nn.Conv2d(3, 1, 1)
        self.steps, self.crash_at, self.seen = steps, crash_at, []

    @classmethod
    def data_config(cls, options):
        return DataConfig(image_size=options.get("image_size", 32), synthesis="urd")

    def stages(self):
        return [Stage("seg", steps=self.steps, trains=("model",))]

    def configure_optimizers(self, stage):
        return {"sgd": torch.optim.SGD(self.model.parameters(), 0.1)}

    def training_step(self, batch, optimizers, stage):
        if self.crash_at and len(self.seen) + 1 == self.crash_at:
            raise Interrupted
        self.seen.append(batch["synthetic"].sum().item())
        loss = nn.functional.binary_cross_entropy_with_logits(self.model(batch["synthetic"]), batch["mask"])
        optimizers["sgd"].zero_grad()
        loss.backward()
        optimizers["sgd"].step()
        return {"loss": loss.item()}

    def predict(self, images):
        amap = torch.sigmoid(self.model(images))
        return amap, amap.flatten(1).amax(1)


def test_synthetic_batches_survive_resume_and_workers(tiny_benchmark, tmp_path):
    base = load_split(tiny_benchmark, "coffee", "train", 32)
    data = SyntheticAnomalies(base, "urd", find_texture_source(allow=("procedural",)), "coffee")
    cfg = dict(batch_size=2, seed=3, progress=False, device="cpu", checkpoint_every=2)
    straight = SynthProbe()
    torch.manual_seed(0)
    straight.model.reset_parameters()
    fit(straight, data, cfg=FitConfig(**cfg))
    crashing = SynthProbe(crash_at=5)
    torch.manual_seed(0)
    crashing.model.reset_parameters()
    with pytest.raises(Interrupted):
        fit(crashing, data, cfg=FitConfig(**cfg, num_workers=2), run_dir=tmp_path)
    resumed = SynthProbe()
    fit(resumed, data, cfg=FitConfig(**cfg, num_workers=2), run_dir=tmp_path)
    assert crashing.seen == straight.seen[:4] and resumed.seen == straight.seen[4:]
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))


def test_runs_build_synthetic_training_sets_and_record_the_texture_source(tiny_benchmark, tmp_path):
    from rdlib.runs import RunSpec, get_or_train

    run = get_or_train(RunSpec.from_profile("synth_probe", "ci", str(tiny_benchmark), "brick"), tmp_path, progress=False)
    assert run.info["data_config"]["synthesis"] == "urd"
    assert run.info["texture_source"] == find_texture_source().name


def test_benchmark_script_runs_in_smoke_mode(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "bench_synthesis.py"
    spec = importlib.util.spec_from_file_location("bench_synthesis", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--smoke", "--out", str(tmp_path)])
    import json

    data = json.loads(next(tmp_path.glob("synthesis_*.json")).read_text())
    assert {r["preset"] for r in data["rows"]} == set(PRESETS) and data["rd_step_ms_per_image"] > 0


def test_urd_foreground_grabcut_and_otsu_find_the_object():
    from rdlib.synthesis.foreground import urd_foreground

    yy, xx = np.mgrid[0:64, 0:64]
    obj = (yy - 32) ** 2 + (xx - 30) ** 2 < 15 ** 2
    rng = np.random.default_rng(0)
    img = np.where(obj[..., None], [200, 170, 60], [30, 40, 50]).astype(np.float64) + rng.normal(0, 6, (64, 64, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for category, truth in (("bottle", obj), ("capsule", ~obj)):      # GrabCut; inverse Otsu (dark objects)
        fg = urd_foreground(img, category)
        iou = (fg & truth).sum() / (fg | truth).sum()
        assert iou > 0.9, (category, iou)
    assert urd_foreground(img, "carpet") is None and urd_foreground(img, "transistor") is None


def test_otsu_threshold_maximises_the_between_class_variance_by_brute_force():
    """Against the definition: the integer t for which splitting the values into ≤ t and > t maximises
    w0·w1·(μ0 − μ1)², found by trying every t."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        v = np.round(np.clip(np.r_[rng.normal(rng.uniform(20, 120), 15, 300), rng.normal(rng.uniform(130, 230), 25, 200)],
                             0, 255))

        def between(t):
            lo, hi = v[v <= t], v[v > t]
            return 0.0 if not len(lo) or not len(hi) else len(lo) * len(hi) * (lo.mean() - hi.mean()) ** 2

        best = max(range(256), key=between)
        assert between(otsu_threshold(v)) == pytest.approx(between(best))


def test_rdre_synthesis_places_anomalies_anywhere_unless_the_foreground_option_is_asked(tiny_benchmark):
    """Neither the RD-RE paper nor DRAEM / DeSTSeg restricts anomalies to a foreground: the default preset computes
    none; ``rdre_foreground`` (an rdlib option) keeps them inside URD's foreground (coffee: the cup)."""
    from rdlib.data.textures import find_texture_source

    base = load_split(tiny_benchmark, "coffee", "train", 64)
    textures = find_texture_source()
    plain = SyntheticAnomalies(base, "rdre", textures, "coffee")
    inside = SyntheticAnomalies(base, "rdre_foreground", textures, "coffee")
    assert plain.foregrounds == [] and "foreground" not in plain[0]
    assert any(f is not None for f in inside.foregrounds) and "foreground" in inside[0]
    fg = inside[0]["foreground"]
    assert torch.all(inside[0]["mask"] <= fg)                  # the anomaly lies inside the foreground


@pytest.mark.parametrize("size", [12, 31, 32, 33, 64])
def test_rdpp_box_fits_any_image_size(size):
    """The box corner is drawn from [1, S − side) as RD++ does; a box as large as a small image starts at 0."""
    g = torch.Generator().manual_seed(size)
    for _ in range(20):
        out, masks = synthesize(torch.zeros(1, 3, size, size), None, None, get_preset("rdpp"), g)
        assert masks.sum() > 0 and out.shape == (1, 3, size, size)


def test_rdpp_noise_leaves_torchs_thread_count_alone():
    """opensimplex runs numba-parallel loops on OpenMP, whose thread count torch shares; drawing the noise must not
    change the threads a (one-thread) training process computes with, or its results stop being reproducible."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.randn(64, 64) @ torch.randn(64, 64)                   # OpenMP in use, as in a training process
        simplex_octaves((3, 20, 20), generator=torch.Generator().manual_seed(0))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
