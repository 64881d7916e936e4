"""What the kernels chapter measures, as tables: the roofline of the anomaly map, which backend runs where, the
kernel's error against the PyTorch reference, the compiled kernel's properties without a GPU, the CPU latency, and
the committed GPU results. The book imports this module; no run does (so it is not part of any run key)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import torch

# (channels, height, width) of the three teacher levels at 256² for the two teachers of the book
LEVELS = {
    "wide_resnet50_2": [(256, 64, 64), (512, 32, 32), (1024, 16, 16)],
    "efficientnet_lite0": [(24, 64, 64), (40, 32, 32), (112, 16, 16)],
}


def roofline(levels: dict = LEVELS, batches=(1, 8, 32), out: int = 256) -> pd.DataFrame:
    """Bytes read and written and FLOPs of one anomaly map (both feature tensors in fp32, a 256² fp32 output):
    6 FLOPs per feature element (three products and three sums of the cosine), per teacher and batch size."""
    rows = []
    for name, lv in levels.items():
        for batch in batches:
            elems = batch * sum(c * h * w for c, h, w in lv)
            pixels = batch * sum(h * w for _, h, w in lv)
            rows.append({"teacher": name, "batch": batch, "read MB (fp32, both tensors)": 2 * elems * 4 / 1e6,
                         "distance maps MB": pixels * 4 / 1e6, f"output MB ({out}², fp32)": batch * out * out * 4 / 1e6,
                         "GFLOP": 6 * elems / 1e9, "FLOP/byte": 6 * elems / (2 * elems * 4 + batch * out * out * 4)})
    return pd.DataFrame(rows).set_index(["teacher", "batch"])


def backends() -> pd.DataFrame:
    """Which backend ``AnomalyMap(backend="auto")`` picks for a CPU tensor, and whether the Triton kernel could run
    it (and why not)."""
    from rdlib.anomaly_map import resolve_backend
    from rdlib.kernels import triton_supported

    rows = {}
    for label, x, interpreter in (("CPU float32", torch.zeros(1), False), ("CPU float64", torch.zeros(1).double(), True)):
        usable, why = triton_supported(x, interpreter)
        rows[label] = {"auto picks": resolve_backend("auto", x), "kernel usable": usable, "why not": why}
    return pd.DataFrame(rows).T.rename_axis("tensor")


def correctness(device: str, scale: float = 1.0, levels: dict = LEVELS) -> pd.DataFrame:
    """The Triton distance and the whole map (upsample, sum, blur) against the PyTorch reference on random features
    at each dtype: the largest absolute error of the distance and of the map, and the largest relative error."""
    from rdlib.anomaly_map import AnomalyMap, cosine_distance_map, fused_map_reference, gaussian_blur
    from rdlib.kernels import cosine_distance_triton

    dtypes = [torch.float32, torch.float16]
    if device == "cpu" or torch.cuda.is_bf16_supported():
        dtypes.append(torch.bfloat16)
    rows = []
    for name, lv in levels.items():
        for dtype in dtypes:
            g = torch.Generator(device=device).manual_seed(0)
            shapes = [(c, max(1, int(h * scale)), max(1, int(w * scale))) for c, h, w in lv]
            t = [torch.randn(2, *sh, device=device, generator=g).to(dtype) for sh in shapes]
            s = [(a.float() + torch.randn(a.shape, device=device, generator=g)).to(dtype) for a in t]
            errs = [(cosine_distance_triton(a, b) - cosine_distance_map(a, b)).abs().max().item() for a, b in zip(t, s)]
            k_map, _ = AnomalyMap(256, backend="triton")(t, s)
            r_map = gaussian_blur(fused_map_reference(t, s, (256, 256)))
            rows.append({"teacher": name, "dtype": str(dtype).replace("torch.", ""), "max |Δ| distance": max(errs),
                         "max |Δ| final map": (k_map - r_map).abs().max().item(),
                         "max relative Δ map": ((k_map - r_map).abs() / r_map.abs().clamp_min(1e-6)).max().item()})
    return pd.DataFrame(rows).set_index(["teacher", "dtype"]).map(lambda v: f"{v:.1e}")


def compiled_kernels() -> pd.DataFrame:
    """The kernel compiled ahead of time for each target GPU, dtype and memory layout (no GPU needed): its global
    loads, registers, spills, programs per SM and whether the dispatch uses it. Raises
    :class:`rdlib.kernels.aot.AOTUnavailable` where this Triton cannot compile ahead of time."""
    from rdlib.kernels.aot import compile_cosine_kernels

    layouts = {
        "NCHW": lambda dt: torch.empty(8, 256, 64, 64, dtype=dt),
        "channels-last": lambda dt: torch.empty(8, 256, 64, 64, dtype=dt).contiguous(memory_format=torch.channels_last),
        "sliced (W 70→64)": lambda dt: torch.empty(8, 256, 64, 70, dtype=dt)[..., :64],
    }
    cases = [(75, torch.float32, "NCHW"), (75, torch.float16, "NCHW"), (75, torch.bfloat16, "NCHW"),
             (80, torch.bfloat16, "NCHW"), (90, torch.float32, "NCHW"), (90, torch.float16, "NCHW"),
             (90, torch.bfloat16, "NCHW"), (90, torch.float32, "channels-last"), (90, torch.float32, "sliced (W 70→64)")]
    tensors = [layouts[layout](dt) for _, dt, layout in cases]
    reports = compile_cosine_kernels([(x, x, cap) for (cap, _, _), x in zip(cases, tensors)])
    rows = [{"target": f"sm_{cap}", "dtype": r.dtype, "layout": layout, "flat pixel axis": r.flat_hw,
             "global loads (bits × count)": ", ".join(f"{b}×{n}" for b, n in sorted(r.global_loads.items())),
             "registers": r.registers, "spilled bytes": r.spill_stores + r.spill_loads,
             "programs/SM (register bound)": 65536 // (32 * r.launch.num_warps * r.registers),
             "dispatch uses it": cap >= 80 or dt != torch.bfloat16}
            for (cap, dt, layout), r in zip(cases, reports)]
    return pd.DataFrame(rows).set_index(["target", "dtype", "layout"])


def cpu_speed(levels: dict = LEVELS, repeats: int = 21) -> pd.DataFrame:
    """Median latency of the reference map (per level distance, upsample, sum, blur in plain PyTorch) and of
    rdlib's torch path (one precomputed linear operator), interleaved so that load hits both alike, batch 1 at
    256², and the speed-up."""
    from rdlib.anomaly_map import AnomalyMap, fused_map_reference, gaussian_blur
    from rdlib.timing import interleaved_latency_ms

    rows = []
    for name, lv in levels.items():
        g = torch.Generator().manual_seed(0)
        t = [torch.randn(1, c, h, w, generator=g) for c, h, w in lv]
        s = [torch.randn(1, c, h, w, generator=g) for c, h, w in lv]
        amap = AnomalyMap(256, backend="torch")
        ms = interleaved_latency_ms({"reference ms": lambda: gaussian_blur(fused_map_reference(t, s, (256, 256))),
                                     "rdlib (torch path) ms": lambda: amap(t, s)}, repeats=repeats)
        rows.append({"teacher": name, **ms})
    df = pd.DataFrame(rows).set_index("teacher")
    df["speed-up"] = df["reference ms"] / df["rdlib (torch path) ms"]
    return df


def correctness_sentence(errors: pd.DataFrame) -> str:
    """What :func:`correctness` found, as one sentence: the largest error over teachers and dtypes."""
    absolute = errors[[c for c in errors.columns if "|Δ|" in c]]
    worst = absolute.apply(pd.to_numeric).max().max()              # the table shows its numbers formatted
    return (f"the kernel and the matrix path agree with the PyTorch reference to {worst:.1e} at most (largest "
            f"absolute difference of the distance or the final map over {errors.index.get_level_values(0).nunique()} "
            f"teachers' shapes in {', '.join(dict.fromkeys(errors.index.get_level_values(1)))}).")


def speed_sentence(speed: pd.DataFrame) -> str:
    """What :func:`cpu_speed` found, as one sentence (ratios from one interleaved run, so they vary between builds)."""
    parts = " and ".join(f"{ratio:.1f}× on {teacher}'s shapes" for teacher, ratio in speed["speed-up"].items())
    head = ("rdlib's PyTorch path is faster than the reference map on this CPU" if (speed["speed-up"] > 1).all()
            else "rdlib's PyTorch path is not faster than the reference map everywhere on this CPU")
    return f"{head}: speed-up {parts} (medians of interleaved repetitions in this build; they vary between builds)."


def gpu_sentence(results: list[dict], checks: pd.DataFrame) -> str:
    """Whether a GPU has measured the kernel (:func:`gpu_results`) and what ``benchmarks/gpu_checks.sh`` found."""
    ran = checks[~checks["outcome"].str.startswith("not run")]
    if not results and ran.empty:
        return ("not measured — no GPU has run `benchmarks/gpu_checks.sh` yet, so the kernel's speed and its run on "
                "real hardware are still open; its arithmetic is checked in Triton's interpreter and its compiled "
                "code read without a GPU (section 4).")
    devices = ", ".join(dict.fromkeys(r.get("device", "?") for r in results))
    bench = f"benchmark results from {devices}" if devices else "no benchmark results committed"
    steps = "; ".join(f"{step}: {row.outcome}" for step, row in ran.iterrows()) or "no test logs committed"
    return f"{bench}; `benchmarks/gpu_checks.sh`: {steps}."


def _results_dir(results_dir: str | Path | None) -> Path | None:
    """``results_dir``, or the repository's ``benchmarks/results`` found from the working directory (or the Colab
    clone); None where there is none."""
    if results_dir is not None:
        return Path(results_dir)
    candidates = (Path.cwd(), *Path.cwd().parents, Path("/content/rdlib"))
    return next((c / "benchmarks" / "results" for c in candidates if (c / "benchmarks" / "results").is_dir()), None)


def gpu_results(results_dir: str | Path | None = None) -> list[dict]:
    """The committed GPU benchmark files (``benchmarks/results/cosine_map_*.json`` other than the CPU's), each read
    as a dict (device, torch, Triton, copy bandwidth, rows, tuning). ``results_dir``: default, the repository's."""
    found = _results_dir(results_dir)
    if found is None:
        return []
    return [json.loads(p.read_text()) for p in sorted(found.glob("cosine_map_*.json")) if "cpu" not in p.name]


# The steps of benchmarks/gpu_checks.sh and the log each writes
GPU_CHECKS = {"Triton kernel tests, compiled on the GPU": "gpu_tests.log",
              "kernel benchmark and launch-plan sweep": "bench.log",
              "every method's paper profile trained and evaluated on CUDA (smoke-scaled)": "gpu_smoke.log"}
_PYTEST_SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed|error|skipped).*?)\s*=*$")


def gpu_checks(results_dir: str | Path | None = None) -> pd.DataFrame:
    """What ``benchmarks/gpu_checks.sh`` found, one row per step: its log (in ``results_dir``), the GPU and commit it
    ran on (``gpu.txt``; "—" for a step that did not run), and its outcome — pytest's summary line for a test step, the last line for the benchmark,
    "not run" where the log is missing (no GPU has run the script yet)."""
    found = _results_dir(results_dir)
    machine = found / "gpu.txt" if found is not None else None
    gpu = commit = "—"
    if machine is not None and machine.is_file():
        lines = [line.strip() for line in machine.read_text().splitlines() if line.strip()]
        gpu = next((line.split(",")[0] for line in lines[1:] if "," in line), "—")
        commit = next((line.split()[-1][:12] for line in lines if line.startswith("commit")), "—")
    rows = []
    for step, name in GPU_CHECKS.items():
        log = found / name if found is not None else None
        ran = log is not None and log.is_file()
        if not ran:
            outcome = "not run (no GPU has run benchmarks/gpu_checks.sh yet)"
        else:
            lines = [line.strip() for line in log.read_text().splitlines() if line.strip()]
            summary = [m.group(1) for line in lines if (m := _PYTEST_SUMMARY.match(line))]
            outcome = summary[-1] if summary else (lines[-1] if lines else "empty log")
        rows.append({"step": step, "log": name, "GPU": gpu if ran else "—", "commit": commit if ran else "—",
                     "outcome": outcome})
    return pd.DataFrame(rows).set_index("step")


__all__ = ["LEVELS", "backends", "compiled_kernels", "correctness", "correctness_sentence", "cpu_speed", "gpu_checks",
           "gpu_results", "gpu_sentence", "roofline", "speed_sentence"]
