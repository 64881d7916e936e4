import os

# Must be set before any @triton.jit decorator runs (i.e. before rdlib.kernels.cosine_map is imported).
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RDLIB_OFFLINE", "1")          # teacher weights: never try the network in tests
if "TRITON_CACHE_DIR" not in os.environ:             # a fresh Triton cache per test session: a warm ~/.triton/cache
    import atexit                                    # once hid a compile path that failed on a clean machine
    import shutil
    import tempfile

    os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="rdlib-triton-cache-")
    atexit.register(shutil.rmtree, os.environ["TRITON_CACHE_DIR"], True)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory):
    """A 64-px embedded benchmark with two categories (generated once per test session)."""
    from rdlib.data import EmbeddedConfig, generate_embedded

    cfg = EmbeddedConfig(size=64, n_train=6, n_test_good=3, n_test_per_defect=1, categories=("brick", "coffee"))
    return generate_embedded(tmp_path_factory.mktemp("embedded"), cfg)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    """The fuzz tests' tally: bad inputs tried, uncaught, silent, per fault class."""
    import sys

    mod = sys.modules.get("test_fuzz_readers")
    if mod is None or not mod.STATS:
        return
    tr = terminalreporter
    tr.write_sep("-", "bad inputs tried, uncaught, silent (readers fuzzing)")
    for fault, s in sorted(mod.STATS.items()):
        tr.write_line(f"{fault:<20} tried {s['tried']:>4}   uncaught {s['uncaught']:>3}   silent {s['silent']:>3}")
    total = {k: sum(s[k] for s in mod.STATS.values()) for k in ("tried", "uncaught", "silent")}
    tr.write_line(f"{'all fault classes':<20} tried {total['tried']:>4}   uncaught {total['uncaught']:>3}   silent {total['silent']:>3}")
