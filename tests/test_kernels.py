"""Triton cosine-distance kernel vs the PyTorch reference.

In CI: under TRITON_INTERPRET=1 on the CPU (set by conftest). On a CUDA machine, ``TRITON_INTERPRET=0 pytest
tests/test_kernels.py`` runs the same tests on the GPU with the compiled kernel (see benchmarks/gpu_checks.sh).
"""
import os

import pytest
import torch

from rdlib.anomaly_map import AnomalyMap, cosine_distance_map
from rdlib.kernels import cosine_distance_triton, triton_supported
from rdlib.kernels.cosine_map import LaunchPlan, merged_hw_stride, plan

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
DEV = "cuda" if torch.cuda.is_available() and not INTERPRET else "cpu"
if DEV == "cpu" and not INTERPRET:
    pytest.skip("the kernel needs a CUDA GPU or TRITON_INTERPRET=1", allow_module_level=True)

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
    t = torch.randn(shape, generator=g).to(DEV, dtype)
    s = torch.randn(shape, generator=g).to(DEV, dtype)
    ours = cosine_distance_triton(t, s)
    ref = cosine_distance_map(t, s)                     # reference also reads the rounded inputs, fp32 math
    assert ours.dtype == torch.float32 and ours.shape == ref.shape
    assert report(f"{shape} {dtype}", ours, ref) < TOL[dtype]


def test_non_contiguous_inputs():
    t = torch.randn(2, 9, 11, 30, device=DEV).permute(0, 3, 1, 2)     # channels-last style strides
    s = torch.randn(2, 30, 18, 11, device=DEV)[:, :, ::2, :]           # strided rows
    assert not t.is_contiguous() and not s.is_contiguous()
    assert report("non-contiguous", cosine_distance_triton(t, s), cosine_distance_map(t, s)) < 1e-5


def test_zero_vectors_follow_the_epsilon_rule():
    t = torch.randn(1, 16, 4, 4, device=DEV)
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
    t = [torch.randn(2, c, h, w, generator=g).to(DEV) for c, h, w in levels]
    s = [x + torch.randn(x.shape, generator=g).to(DEV) for x in t]
    ours, score = AnomalyMap(256, backend="triton")(t, s)
    ref, ref_score = AnomalyMap(256, backend="torch")(t, s)
    assert report("anomaly map", ours, ref) < 1e-5
    assert torch.allclose(score, ref_score, atol=1e-5)


def test_kernel_is_inference_only_autograd_takes_the_torch_path():
    t = torch.randn(1, 8, 4, 4, device=DEV, requires_grad=True)
    s = torch.randn(1, 8, 4, 4, device=DEV)
    with pytest.raises(RuntimeError, match="inference only"):
        AnomalyMap(8, backend="triton")([t], [s])
    amap, score = AnomalyMap(8, backend="auto")([t], [s])    # a gradient is needed: PyTorch path, which has one
    score.sum().backward()
    assert t.grad is not None and t.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.allclose(AnomalyMap(8, backend="triton")([t], [s])[0], amap.detach(), atol=1e-5)


PLANS = [LaunchPlan(8, 16, 1), LaunchPlan(8, 16, 3), LaunchPlan(16, 128, 7), LaunchPlan(4, 32, 100)]


@pytest.mark.parametrize("launch", PLANS, ids=str)
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "sliced"])
def test_launch_plans_and_layouts_agree_with_the_reference(launch, layout):
    """Every block size, channel split (incl. more splits than chunks) and pixel layout gives the same map."""
    g = torch.Generator(device=DEV).manual_seed(1)
    if layout == "nchw":
        t, s = torch.randn(2, 37, 13, 21, generator=g, device=DEV), torch.randn(2, 37, 13, 21, generator=g, device=DEV)
    elif layout == "channels_last":
        t = torch.randn(2, 37, 13, 21, generator=g, device=DEV).contiguous(memory_format=torch.channels_last)
        s = torch.randn(2, 37, 13, 21, generator=g, device=DEV).contiguous(memory_format=torch.channels_last)
    else:
        t = torch.randn(2, 37, 13, 25, generator=g, device=DEV)[..., 2:23]
        s = torch.randn(2, 37, 26, 21, generator=g, device=DEV)[:, :, ::2]
    assert (merged_hw_stride(t) is None) == (layout == "sliced")
    assert report(f"{launch} {layout}", cosine_distance_triton(t, s, launch=launch), cosine_distance_map(t, s)) < 1e-5


def test_channel_split_zero_vectors_and_empty_inputs():
    t = torch.randn(1, 50, 3, 3, device=DEV)
    s = t.clone()
    t[0, :, 0, 0] = 0
    d = cosine_distance_triton(t, s, launch=LaunchPlan(4, 16, 5))[0, 0]
    assert d[0, 0] == 1 and d[1, 1].abs() < 1e-6                       # zero vector: 1; identical vectors: 0
    empty, no_channels = torch.zeros(0, 4, 3, 3, device=DEV), torch.zeros(2, 0, 3, 3, device=DEV)
    assert cosine_distance_triton(empty, empty).shape == (0, 1, 3, 3)
    assert torch.equal(cosine_distance_triton(no_channels, no_channels), cosine_distance_map(no_channels, no_channels))


@pytest.mark.parametrize("B", [1, 8, 32])
@pytest.mark.parametrize("C,HW", [(256, 4096), (512, 1024), (1024, 256), (24, 4096), (112, 256), (3, 1)])
def test_plan_fills_the_gpu_or_stops_at_four_chunks_per_program(B, C, HW):
    sms = 132
    p = plan(B, C, HW, sm_count=sms)
    assert 16 <= p.block_hw <= 128 and p.block_c * p.block_hw <= 2048 and p.split >= 1
    chunks = -(-C // p.block_c)
    programs = B * -(-HW // p.block_hw) * p.split
    assert programs >= 4 * sms or p.split == max(1, chunks // 4)
    if p.split > 1:
        assert chunks // p.split >= 4


def test_interpreter_plan_is_coarse():
    assert plan(2, 300, 99, interpreter=True) == LaunchPlan(256, 128, 1)


def test_count_global_loads_by_width():
    from rdlib.kernels.aot import count_global_loads

    ptx = """
    @%p1 ld.global.v4.b32 { %r1, %r2, %r3, %r4 }, [ %rd1 + 0 ];
    @%p2 ld.global.b32 { %r5 }, [ %rd2 + 0 ];
    ld.global.nc.v2.b16 { %h1, %h2 }, [ %rd3 ];
    st.global.v4.b32 [ %rd4 ], { %r1, %r2, %r3, %r4 };
    ld.shared.b32 %r6, [ %r7 ];
    """
    assert count_global_loads(ptx) == {128: 1, 32: 2}


COMPILE_CASES = [(75, torch.float32), (75, torch.float16), (80, torch.bfloat16),
                 (90, torch.float32), (90, torch.float16), (90, torch.bfloat16)]


@pytest.fixture(scope="module")
def compiled():
    """All compile-only cases in one batch (one child process when this process interprets kernels)."""
    import triton

    from rdlib.kernels.aot import TESTED_TRITON, AOTUnavailable, compile_cosine_kernels

    wrn1 = {dt: torch.empty(8, 256, 64, 64, dtype=dt) for _, dt in COMPILE_CASES}
    cl = torch.empty(2, 256, 64, 64).contiguous(memory_format=torch.channels_last)      # channels innermost
    sliced = torch.empty(2, 256, 64, 70)[..., :64]                                         # H, W do not merge
    try:
        reports = compile_cosine_kernels([(wrn1[dt], wrn1[dt], cap) for cap, dt in COMPILE_CASES]
                                         + [(cl, cl, 90), (sliced, sliced, 90), (sliced, sliced, 90, LaunchPlan(8, 32, 3))])
    except AOTUnavailable as e:                       # e.g. the device machine's own Triton; CI pins the tested one
        if triton.__version__.startswith(TESTED_TRITON):
            raise
        pytest.skip(str(e))
    return dict(zip([*COMPILE_CASES, "channels_last", "sliced", "sliced_split"], reports))


@pytest.mark.parametrize("case", COMPILE_CASES, ids=str)
def test_kernel_compiles_for_real_gpus_with_vector_loads_and_no_spills(compiled, case):
    """Compile (Triton → PTX → ptxas cubin, all on the CPU) for Turing/Ampere/Hopper on WRN50-2 level 1 at batch 8.

    NCHW-contiguous inputs must give 128-bit global loads (the FLAT_HW path) and no register spills.
    """
    r = compiled[case]
    print(r)
    assert (r.capability, r.dtype) == (case[0], str(case[1]).replace("torch.", ""))
    assert r.flat_hw and r.spill_stores == 0 and r.spill_loads == 0
    assert set(r.global_loads) == {128}, r.global_loads


def test_compiled_layouts_and_split_finish(compiled):
    from rdlib.kernels.aot import compile_finish_kernel, count_global_loads

    assert compiled["channels_last"].flat_hw and compiled["channels_last"].widest_load_bits == 128
    for name in ("sliced", "sliced_split"):
        r = compiled[name]
        assert not r.flat_hw and r.widest_load_bits == 32 and r.spill_stores == 0
    assert compiled["sliced_split"].launch == LaunchPlan(8, 32, 3)
    assert count_global_loads(compile_finish_kernel(8 * 4096, 3, 75)).keys() == {128}


@pytest.mark.gpu
def test_gpu_kernel_compiles_and_matches():  # pragma: no cover - needs CUDA (run in a process without TRITON_INTERPRET)
    if DEV != "cuda":
        pytest.skip("needs a CUDA GPU and TRITON_INTERPRET=0 (the interpreter also runs kernels on GPU tensors)")
    checked = set()
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for batch in (1, 8):
            for c, h, w in [(256, 64, 64), (512, 32, 32), (1024, 16, 16), (37, 13, 21)]:
                t = torch.randn(batch, c, h, w, device="cuda").to(dtype)
                s = torch.randn(batch, c, h, w, device="cuda").to(dtype)
                if triton_supported(t)[0]:
                    checked.add(dtype)
                    ref = cosine_distance_map(t, s)
                    for launch in (None, LaunchPlan(16, 128, 1), LaunchPlan(8, 64, 5)):
                        err = (cosine_distance_triton(t, s, launch=launch) - ref).abs().max().item()
                        assert err < TOL[dtype], (dtype, batch, c, h, w, launch, err)
                    cl_t, cl_s = (x.contiguous(memory_format=torch.channels_last) for x in (t, s))
                    assert (cosine_distance_triton(cl_t, cl_s) - ref).abs().max().item() < TOL[dtype]
    expected = {torch.float32, torch.float16} | ({torch.bfloat16} if torch.cuda.get_device_capability() >= (8, 0) else set())
    assert checked == expected, f"kernel ran for {checked}, expected {expected}: the dispatch refused a supported dtype"


def test_benchmark_script_runs_its_kernel_and_tuning_paths_in_smoke_mode(tmp_path):
    """The GPU benchmark has never run on a GPU here; --smoke runs its code paths on tiny shapes in the interpreter."""
    if not INTERPRET:
        pytest.skip("--smoke needs the interpreter (this process compiles kernels for the GPU)")
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "bench_cosine_map.py"
    spec = importlib.util.spec_from_file_location("bench_cosine_map", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--smoke", "--tune", "--out", str(tmp_path)])
    assert json.loads(next(tmp_path.glob("cosine_map_*smoke.json")).read_text()) == json.loads(json.dumps(result))
    # the reference computes 1 − cos in the input dtype, the kernel in fp32: fp16 differences are the reference's rounding
    assert len(result["rows"]) == 4
    assert all(r["max_abs_err"] < {"float32": 1e-5, "float16": 3 * 2e-3}[r["dtype"]] for r in result["rows"])
    assert len(result["tuning"]) == 12 and all(r["best_s"] <= r["plan_s"] for r in result["tuning"])
    assert sum(r["configs_tried"] for r in result["tuning"]) > 12


def test_aot_names_the_triton_version_when_its_internals_differ(monkeypatch):
    import triton.runtime.jit

    from rdlib.kernels.aot import AOTUnavailable, compile_jit
    from rdlib.kernels.cosine_map import _finish_split_kernel

    kernel = getattr(_finish_split_kernel, "fn", _finish_split_kernel)     # the Python function under the interpreter
    monkeypatch.delattr(triton.runtime.jit, "create_function_from_signature", raising=False)
    x = torch.empty(16)
    with pytest.raises(AOTUnavailable, match=f"this is Triton {triton.__version__}"):
        compile_jit(triton.runtime.jit.JITFunction(kernel), (x, x, 4, 1, 1e-8), dict(BLOCK=16), 90)


def test_kernel_report_roofline_counts_bytes_and_flops_by_hand():
    from rdlib.kernels import report

    t = report.roofline({"lite": [(24, 64, 64), (40, 32, 32), (112, 16, 16)]}, batches=(2,))
    elems = 2 * (24 * 64 * 64 + 40 * 32 * 32 + 112 * 16 * 16)                # 335,872 feature values per tensor
    row = t.loc[("lite", 2)]
    assert row["read MB (fp32, both tensors)"] == pytest.approx(2 * elems * 4 / 1e6)
    assert row["GFLOP"] == pytest.approx(6 * elems / 1e9)
    assert row["distance maps MB"] == pytest.approx(2 * (64 * 64 + 32 * 32 + 16 * 16) * 4 / 1e6)
    b = report.backends()
    assert b.loc["CPU float32", "auto picks"] == "torch" and not b.loc["CPU float64", "kernel usable"]


def test_gpu_checks_reads_each_steps_outcome_and_says_which_did_not_run(tmp_path):
    from rdlib.kernels import report

    (tmp_path / "gpu.txt").write_text("name, driver_version, memory.total [MiB], clocks.max.sm [MHz]\n"
                                      "NVIDIA H100 80GB HBM3, 550.54, 81559 MiB, 1980 MHz\n"
                                      "torch 2.14.1 triton 3.5.0\ncommit 0123456789abcdef0123\n")
    (tmp_path / "gpu_tests.log").write_text("....s\nSKIPPED [1] x\n========= 41 passed, 1 skipped in 12.3s =========\n")
    (tmp_path / "gpu_smoke.log").write_text("F\nFAILED tests/test_smoke.py::test_x\n1 failed, 3 deselected in 80.1s\n")
    t = report.gpu_checks(tmp_path)
    steps = list(report.GPU_CHECKS)
    assert t.loc[steps[0], "outcome"] == "41 passed, 1 skipped in 12.3s"
    assert t.loc[steps[2], "outcome"] == "1 failed, 3 deselected in 80.1s"
    assert t.loc[steps[1], "outcome"].startswith("not run") and t.loc[steps[1], "GPU"] == "—"   # no bench.log
    assert set(t["GPU"]) == {"NVIDIA H100 80GB HBM3", "—"} and set(t["commit"]) == {"0123456789ab", "—"}
    assert all(report.gpu_checks(tmp_path / "empty")["outcome"].str.startswith("not run"))


def test_kernel_findings_sentences_say_what_the_tables_hold(tmp_path):
    import pandas as pd

    from rdlib.kernels import report

    errors = pd.DataFrame({"max |Δ| distance": ["1.0e-07", "3.0e-06"], "max |Δ| final map": ["2.0e-07", "5.0e-07"]},
                          index=pd.MultiIndex.from_tuples([("wrn", "float32"), ("lite", "bfloat16")]))  # as shown
    assert "to 3.0e-06 at most" in report.correctness_sentence(errors)
    assert "2 teachers' shapes in float32, bfloat16" in report.correctness_sentence(errors)
    speed = pd.DataFrame({"speed-up": [1.66, 0.8]}, index=["wrn", "lite"])
    assert report.speed_sentence(speed).startswith("rdlib's PyTorch path is not faster")
    assert "1.7× on wrn's shapes and 0.8× on lite's shapes" in report.speed_sentence(speed)
    assert report.gpu_sentence([], report.gpu_checks(tmp_path)).startswith("not measured")
    (tmp_path / "gpu_tests.log").write_text("3 passed in 1.0s\n")
    said = report.gpu_sentence([{"device": "NVIDIA H100"}], report.gpu_checks(tmp_path))
    assert "NVIDIA H100" in said and "3 passed in 1.0s" in said and "not run" not in said
    assert report.gpu_sentence([], report.gpu_checks(tmp_path)).startswith("no benchmark results committed")
