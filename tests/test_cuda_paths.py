"""The CUDA branches, checked on a CPU under a mocked CUDA capability (issue #32): which device a sweep worker takes,
when the Triton kernel is dispatched, when torch.compile is tried, the cost module's GPU memory arithmetic and the
comparison's GPU cost columns. What still needs a real GPU (the compiled kernel, real timings) is in
benchmarks/gpu_checks.sh."""
import types

import pytest
import torch

from rdlib import comparison, cost, sweep
from rdlib.anomaly_map import resolve_backend
from rdlib.inference import compile_wanted
from rdlib.kernels import triton_supported
from rdlib.utils import default_device


@pytest.fixture
def gpus(monkeypatch):
    """A machine with two CUDA GPUs of a capability the test sets (``gpus.capability = (8, 0)``)."""
    state = types.SimpleNamespace(capability=(7, 5))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: state.capability)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    return state


def on_gpu(dtype=torch.float32):
    """A stand-in for a CUDA tensor: what the dispatch reads (dtype, device) without a GPU to allocate on."""
    return types.SimpleNamespace(dtype=dtype, device=torch.device("cuda", 0))


def test_sweep_workers_take_the_gpus_round_robin(gpus, monkeypatch):
    import distributed

    for name, expected in [(0, "cuda:0"), (1, "cuda:1"), (2, "cuda:0"), (3, "cuda:1"), ("tcp-worker", "cuda:0")]:
        monkeypatch.setattr(distributed, "get_worker", lambda name=name: types.SimpleNamespace(name=name))
        assert sweep._worker_device(use_gpu=True) == expected
    assert sweep._worker_device(use_gpu=False) == "cpu"
    assert default_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert sweep._worker_device(use_gpu=True) == "cpu" and default_device().type == "cpu"


@pytest.mark.parametrize("capability, dtype, runs", [
    ((7, 0), torch.float32, False),            # older than a T4
    ((7, 5), torch.float32, True),             # Colab's T4
    ((7, 5), torch.float16, True),
    ((7, 5), torch.bfloat16, False),           # bfloat16 needs Ampere
    ((8, 0), torch.bfloat16, True),            # A100
    ((8, 9), torch.float32, True),             # L4
    ((8, 0), torch.float64, False),            # no float64 kernel
])
def test_the_kernel_is_dispatched_by_capability_and_dtype(gpus, capability, dtype, runs):
    gpus.capability = capability
    ok, why = triton_supported(on_gpu(dtype))
    assert ok == runs and (why == "") == runs
    assert resolve_backend("auto", on_gpu(dtype)) == ("triton" if runs else "torch")
    assert resolve_backend("auto", on_gpu(dtype), needs_grad=True) == "torch"      # the kernel has no backward


def test_the_interpreter_never_runs_on_a_gpu(gpus, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    ok, why = triton_supported(on_gpu())
    assert not ok and "unset it to compile" in why


def test_torch_compile_is_tried_by_default_on_cuda_only():
    assert compile_wanted(torch.device("cuda", 0)) and compile_wanted("cuda:1", "auto")
    assert not compile_wanted(torch.device("cpu"))
    assert compile_wanted("cpu", True) and not compile_wanted("cuda", False)


def test_gpu_peak_memory_is_the_allocators_peak_above_what_was_allocated(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 300e6)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 1_250e6)
    assert cost.peak_memory_mb(lambda: calls.append("fn"), torch.device("cuda", 0)) == pytest.approx(950.0)
    assert calls == ["sync", "reset", "fn", "sync"]                 # the peak is reset before the call, read after


def test_the_comparison_measures_cost_on_the_gpu_too_and_labels_its_columns(gpus, monkeypatch):
    seen = []
    run = types.SimpleNamespace(load_method=lambda dev: dev)
    monkeypatch.setattr("rdlib.runs.load_run", lambda spec, runs_dir=None: run)

    def fake_cost(method, image_size, batch=1, device=None, repeats=3):
        seen.append((device, batch))
        return {"GFLOPs": 1.0, f"latency ms (batch {batch})": 2.0 if device == "cpu" else 0.5,
                f"peak activations MB (batch {batch})": 10.0}

    monkeypatch.setattr(cost, "inference_cost", fake_cost)
    task = types.SimpleNamespace(method="rd", spec=lambda: {})
    table = comparison.inference_costs([task], 128, [1], {"rd": "RD"})
    assert seen == [("cpu", 1), ("cuda", 1)]
    row = table.loc["RD"]
    assert row["latency ms (batch 1)"] == 2.0 and row["latency ms (batch 1) cuda"] == 0.5
    assert "peak activations MB (batch 1) cuda" in table.columns and "GFLOPs cuda" not in table.columns


def test_latency_on_the_gpu_waits_for_queued_work_around_each_timed_call_and_not_on_the_cpu(monkeypatch):
    from rdlib.timing import latency_ms

    calls, started = [], []
    monkeypatch.setenv("RDLIB_SMOKE", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("sync", device)))
    latency_ms(lambda: calls.append("fn"), repeats=2, warmup=1, device="cuda:1")
    sync = ("sync", torch.device("cuda", 1))                        # the device measured, not the current one
    assert calls == ["fn"] + [sync, "fn", sync] * 2                 # warm-up untimed; each timed call fenced
    calls.clear()
    latency_ms(lambda: calls.append("fn"), repeats=2, warmup=0, device=torch.device("cpu"))
    assert calls == ["fn", "fn"]
    calls.clear()                                                   # CUDA started by the call itself: fenced after
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: bool(started))
    latency_ms(lambda: (calls.append("fn"), started.append(1)), repeats=1, warmup=0, device=None)
    assert calls == ["fn", ("sync", None)]
