"""Smoke runs of the profiles the book's CPU never runs (issue #32): ``RDLIB_SMOKE=1`` (rdlib.smoke) cuts every budget
to one unit and gives the teachers random weights; everything else — image sizes, teachers, data configs, per-category
options, workers and threads — is the real profile's. The chapters execute through papermill with the `paper`
parameter file on generated trees of each dataset layout (tests/trees.py)."""
import importlib.util
import shutil
from pathlib import Path

import pytest

from rdlib import smoke
from rdlib.data import list_categories, read_dataset, verify
from rdlib.methods import list_methods, method_entry, method_profile
from trees import CATEGORIES, write_tree

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_cuts_every_budget_to_one_unit_and_nothing_else(monkeypatch):
    monkeypatch.delenv(smoke.ENV, raising=False)
    ours = [m for m in list_methods() if method_entry(m).cls.__module__.startswith("rdlib.methods.")]  # not tests' toys
    real = {(m, p): method_profile(m, p, "cable") for m in ours for p in method_entry(m).profiles}
    monkeypatch.setenv(smoke.ENV, "1")
    budgets = 0
    for (m, p), prof in real.items():
        cut = method_profile(m, p, "cable")
        assert cut["fit"] == prof["fit"], (m, p)                              # batch size, seed, checkpoints
        assert cut["options"]["weights"] == "random", (m, p)                  # no download
        for k, v in prof["options"].items():
            if k in smoke.BUDGET_OPTIONS:
                budgets += 1
                assert cut["options"][k] == min(v, 1), (m, p, k)
            elif k != "weights":
                assert cut["options"][k] == v, (m, p, k)                      # image size, teacher, lr … unchanged
    assert budgets >= 20                                                      # every method's profiles have budgets
    assert method_profile("urd", "paper", "cable")["options"]["steps"] == 1   # the per-category budget (10k) too
    assert method_profile("rdre", "paper")["options"]["teacher"] == real[("rdre", "paper")]["options"]["teacher"]
    monkeypatch.setenv(smoke.ENV, "0")
    assert method_profile("urd", "paper", "cable")["options"]["steps"] == 10000


def test_smoke_times_each_measurement_with_one_call_and_a_real_run_with_all(monkeypatch):
    from rdlib.timing import interleaved_latency_ms, latency_ms

    calls = {"a": 0, "b": 0}

    def call(name):
        calls[name] += 1

    for switch, single, pair in (("1", 1, {"a": 1, "b": 1}), ("0", 2 + 7, {"a": 1 + 5, "b": 1 + 5})):
        monkeypatch.setenv(smoke.ENV, switch)
        calls.update(a=0, b=0)
        assert latency_ms(lambda: call("a"), repeats=7, warmup=2) >= 0 and calls["a"] == single, switch
        calls.update(a=0, b=0)
        ms = interleaved_latency_ms({"a": lambda: call("a"), "b": lambda: call("b")}, repeats=5, warmup=1)
        assert set(ms) == {"a", "b"} and calls == pair, switch


@pytest.mark.parametrize("fmt", sorted(CATEGORIES))
def test_generated_trees_are_what_the_readers_expect(tmp_path, fmt):
    root = write_tree(tmp_path / fmt, fmt, n_train=3, n_good=2, n_bad=2)
    assert list_categories(root, fmt) == sorted(CATEGORIES[fmt])
    counts = verify(root, fmt)                                                # masks present, pixels readable
    assert counts.images.sum() == len(CATEGORIES[fmt]) * 7
    t = read_dataset(root, CATEGORIES[fmt][0], fmt)
    assert (t.split == "train").sum() == 3 and t.label.sum() == 2


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_checks.sh)")
def test_every_method_trains_its_paper_profile_and_predicts_on_cuda(tmp_path, monkeypatch):
    """On a GPU (benchmarks/gpu_checks.sh): each method's `paper` profile, smoke-scaled, trained and evaluated on
    CUDA on a generated MVTec tree (torch.compile tried by default there), and its inference cost on the GPU."""
    from rdlib.cost import inference_cost
    from rdlib.experiments import train_categories

    monkeypatch.setenv(smoke.ENV, "1")
    root = write_tree(tmp_path / "mvtec", "mvtec", ["cable"])
    for m in list_methods():
        cr = train_categories(m, "paper", root, ["cable"], runs_dir=tmp_path / "runs", device="cuda")
        assert not cr.failed, (m, cr.failed)
        run = cr.runs["cable"]
        assert run.info["device"].startswith("cuda") and run.metrics["i_auroc"] == run.metrics["i_auroc"]
        c = inference_cost(run.load_method("cuda"), 256, device="cuda", repeats=3)
        print(m, {k: round(v, 2) for k, v in c.items()})


def _runner():
    spec = importlib.util.spec_from_file_location("nb_run", ROOT / "notebooks" / "_run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _parameters(name: str) -> set[str]:
    """The names a chapter's parameters cell assigns."""
    import ast

    import jupytext

    cell = next(c for c in jupytext.read(ROOT / "notebooks" / f"{name}.py").cells
                if "parameters" in c.metadata.get("tags", []))
    return {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets}


def _execute(runner, name: str, profile: str, out: Path, fewer: dict | None = None, clean: bool = True, **overrides):
    """Execute chapter ``name`` with the ``profile`` parameter file and ``overrides``; ``fewer``: the smoke run's
    smaller category and seed lists, for the parameters this chapter has (the loops over them are the same)."""
    import nbformat

    fewer = {k: v for k, v in (fewer or {}).items() if k in _parameters(name)}
    overrides = {k: v for k, v in overrides.items() if k in _parameters(name)}     # e.g. no DATA_ROOT for kernels
    params = {**runner.load_params(profile, name), "PROGRESS": False, **fewer, **overrides}
    try:
        runner.execute(name, params, out / f"{name}.ipynb")
    finally:                                  # checkpoints of the papers' teachers: hundreds of MB a run
        if clean and "RUNS_DIR" in overrides:
            shutil.rmtree(overrides["RUNS_DIR"], ignore_errors=True)
    nb = nbformat.read(out / f"{name}.ipynb", as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    return nb


# Fewer categories and seeds than the parameter files list (a smoke run still trains each at its full size and 256²):
# cable keeps URD's per-category budget in the path.
PAPER_FEWER = dict(CATEGORIES=["cable"], CLAIM_CATEGORIES=["cable"], CLAIM_SEEDS=[111], MAIN_CATEGORIES=["cable"],
                   NOISE_CATEGORIES=["cable"], FEATURE_CATEGORY="cable", MAP_CATEGORY="cable", SEEDS=[111],
                   COST_BATCHES=[1], NOISE_SIGMAS=[0.05])
FULL_FEWER = dict(CATEGORIES=["brick", "coffee"], CLAIM_CATEGORIES=["brick", "coffee"], CLAIM_SEEDS=[111],
                  ABLATION_CATEGORIES=["brick"], ABLATION_SEEDS=[111], MAIN_CATEGORIES=["brick", "coffee"],
                  NOISE_CATEGORIES=["coffee"], SEEDS=[111, 112], SENSITIVITY={"memory_items": [10], "hard_k": [1]},
                  COST_BATCHES=[1])


CHAPTERS = ["00_data", "01_rd", "02_kernels", "03_urd", "04_aand", "05_rdre", "06_comparison"]


@pytest.fixture(scope="module")
def mvtec_tree(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("mvtec"), "mvtec")


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory):
    """One runs folder for a profile's chapters, executed in order: later chapters reuse earlier runs by key, as in
    a real build; removed afterwards (checkpoints of the papers' teachers are hundreds of MB each)."""
    folders = {}

    def folder(profile: str) -> Path:
        if profile not in folders:
            folders[profile] = tmp_path_factory.mktemp(f"runs_{profile}")
        return folders[profile]

    yield folder
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.notebooks
@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_runs_the_paper_profile_on_an_mvtec_tree(name, mvtec_tree, shared_runs, tmp_path, monkeypatch):
    monkeypatch.setenv(smoke.ENV, "1")
    nb = _execute(_runner(), name, "paper", tmp_path, PAPER_FEWER, clean=False, DATA_ROOT=str(mvtec_tree),
                  RUNS_DIR=str(shared_runs("paper")))
    shown = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert 'PROFILE = "paper"' in shown and ("DATA_ROOT" not in _parameters(name) or str(mvtec_tree) in shown)


SMALL_EMBEDDED = dict(N_TRAIN=4, N_TEST_GOOD=2, N_TEST_PER_DEFECT=1)   # the embedded benchmark, a few images


@pytest.mark.notebooks
@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_runs_the_full_profile_on_the_embedded_benchmark(name, shared_runs, tmp_path_factory, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv(smoke.ENV, "1")
    monkeypatch.setenv("RDLIB_DATA", str(tmp_path_factory.getbasetemp() / "embedded"))   # shared by the chapters
    nb = _execute(_runner(), name, "full", tmp_path, FULL_FEWER, clean=False, RUNS_DIR=str(shared_runs("full")),
                  **SMALL_EMBEDDED)
    shown = [o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for c in nb.cells
             for o in c.get("outputs", [])]
    assert any("256" in text for text in shown)                                              # at the profile's 256²


@pytest.mark.notebooks
@pytest.mark.parametrize("fmt", ["visa", "btad", "mpdd"])
@pytest.mark.parametrize("name", ["00_data", "01_rd"])
def test_the_data_and_rd_chapters_run_the_paper_profile_on_every_other_layout(name, fmt, tmp_path, monkeypatch):
    """The chapters that read a dataset tree themselves (the data chapter: counts, gallery; RD: the first runs); the
    later chapters read it through the same `rdlib.chapter.start` and readers, exercised on MVTec AD above."""
    monkeypatch.setenv(smoke.ENV, "1")
    root = write_tree(tmp_path / fmt, fmt)
    extra = dict(CATEGORIES=CATEGORIES[fmt][:1], RUNS_DIR=str(tmp_path / "runs")) if name == "01_rd" else {}
    _execute(_runner(), name, "paper", tmp_path, DATA_ROOT=str(root), DATA_FORMAT=fmt, **extra)


def _broken(tmp_path, case: str) -> dict:
    """Parameters for the RD chapter (`paper` file) pointing at a broken tree, and the path its error must name."""
    if case == "wrong root":
        return dict(DATA_ROOT=str(tmp_path / "no_such_folder")), tmp_path / "no_such_folder", "no such folder"
    if case == "missing category":
        root = write_tree(tmp_path / "mvtec", "mvtec", [c for c in CATEGORIES["mvtec"] if c != "cable"], n_train=1,
                          n_good=1, n_bad=1)
        return dict(DATA_ROOT=str(root)), root / "cable", "no category folder 'cable'"
    if case == "visa without its split file":
        root = write_tree(tmp_path / "visa", "visa", n_train=1, n_good=1, n_bad=1)
        (root / "split_csv" / "1cls.csv").unlink()
        return (dict(DATA_ROOT=str(root), DATA_FORMAT="visa", CATEGORIES=CATEGORIES["visa"]),
                root / "split_csv" / "1cls.csv", "VisA needs its split file")
    root = write_tree(tmp_path / "mvtec", "mvtec", n_train=1, n_good=1, n_bad=1)     # a mask missing
    mask = root / "screw" / "ground_truth" / "crack" / "002_mask.png"
    mask.unlink()
    return dict(DATA_ROOT=str(root)), mask, "Restore it from the dataset's release"


@pytest.mark.notebooks
@pytest.mark.parametrize("case", ["wrong root", "missing category", "visa without its split file", "missing mask"])
def test_bad_real_data_stops_the_chapter_at_its_first_cell_naming_the_path(case, tmp_path, monkeypatch):
    from papermill.exceptions import PapermillExecutionError

    monkeypatch.setenv(smoke.ENV, "1")
    overrides, path, advice = _broken(tmp_path, case)
    with pytest.raises(PapermillExecutionError) as e:
        _execute(_runner(), "01_rd", "paper", tmp_path, clean=False, RUNS_DIR=str(tmp_path / "runs"), **overrides)
    assert str(path) in e.value.evalue and advice in e.value.evalue
    import jupytext

    setup = next(c.source for c in jupytext.read(ROOT / "notebooks" / "01_rd.py").cells
                 if c.cell_type == "code" and "start(" in c.source)            # the chapter's first working cell
    assert e.value.source == setup and not (tmp_path / "runs").exists()      # it stopped there, nothing trained
