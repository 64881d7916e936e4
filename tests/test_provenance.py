"""Run keys that follow the code: a run's key changes with the code its training and evaluation execute and with
nothing else; settings that cannot change the weights stay out of it; stale run folders are reported, removed on
request and never reused."""
import json
import shutil
from pathlib import Path

import pytest
import torch

import rdlib
from rdlib import provenance
from rdlib.methods import create_method, list_methods
from rdlib.runs import RunError, RunSpec, build_datasets, get_or_train, load_run, stale_runs
from rdlib.training import FitConfig, fit

REPO = Path(rdlib.__file__).resolve().parents[1]
METHODS = [m for m in list_methods() if m in ("rd", "rdpp", "urd", "aand", "rdre", "patch_knn")]


@pytest.fixture
def repo_copy(tmp_path, monkeypatch):
    """A copy of rdlib/ and notebooks/ that rdlib.provenance hashes instead of the installed package."""
    shutil.copytree(REPO / "rdlib", tmp_path / "rdlib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.ipynb", "params"))
    monkeypatch.setattr(provenance, "PACKAGE_ROOT", tmp_path / "rdlib")
    provenance.clear_cache()
    yield tmp_path
    provenance.clear_cache()


def _keys():
    provenance.clear_cache()
    return {m: RunSpec.from_profile(m, "ci", "/nowhere", "brick").key() for m in METHODS}


def _edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n# edited\n")


def test_editing_a_methods_loss_changes_its_keys_and_only_its_keys(repo_copy):
    before = _keys()
    _edit(repo_copy / "rdlib/methods/urd/loss.py")
    after = _keys()
    assert [m for m in METHODS if before[m] != after[m]] == ["urd"]
    _edit(repo_copy / "rdlib/methods/rd/loss.py")                 # RD++ builds on RD's package: both move
    assert sorted(m for m, k in _keys().items() if k != after[m]) == ["rd", "rdpp"]


def test_code_a_run_never_executes_leaves_every_key(repo_copy):
    before = _keys()
    for f in ("notebooks/03_urd.py", "rdlib/viz.py", "rdlib/claims.py", "rdlib/stats.py", "rdlib/experiments.py",
              "rdlib/sweep.py", "rdlib/__main__.py", "rdlib/provenance.py"):
        _edit(repo_copy / f)
    assert _keys() == before


def test_shared_code_moves_the_keys_of_the_runs_that_execute_it(repo_copy):
    before = _keys()
    _edit(repo_copy / "rdlib/synthesis/noise.py")                  # only methods whose data config synthesises
    moved = {m for m, k in _keys().items() if k != before[m]}
    assert moved == {m for m in METHODS if RunSpec.from_profile(m, "ci", "/x", "brick").data_config().synthesis}
    assert "rd" not in moved and "urd" in moved
    _edit(repo_copy / "rdlib/training.py")                         # every run executes the loop
    assert all(k != before[m] for m, k in _keys().items())


def test_code_files_follow_imports_inside_functions_and_not_the_registry():
    files = provenance.code_files("rdre", synthesis=True)
    assert "rdlib/methods/rdre/loss.py" in files and "rdlib/synthesis/noise.py" in files
    assert "rdlib/data/textures.py" in files                       # imported inside runs.build_datasets
    assert not any(f.startswith(("rdlib/methods/urd/", "rdlib/methods/aand/")) for f in files)
    rd = provenance.code_files("rd")
    assert "rdlib/synthesis/noise.py" not in rd and "rdlib/viz.py" not in rd and "rdlib/claims.py" not in rd


def test_evaluating_during_training_leaves_the_weights_bitwise_unchanged(tiny_benchmark):
    spec = RunSpec.from_profile("rd", "ci", tiny_benchmark, "brick", {"epochs": 2}, {"batch_size": 3})
    train, test = build_datasets(spec)
    weights = {}
    for every in (0, 1):
        torch.manual_seed(0)
        method = create_method("rd", **spec.options)
        out = fit(method, train, test, FitConfig(batch_size=3, eval_every=every, progress=False))
        weights[every] = method.state_dict()
        assert any("test_i_auroc" in h for h in out["history"]) == bool(every)
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_settings_that_cannot_change_the_weights_are_not_in_the_key():
    def key(**fit):
        return RunSpec.from_profile("rd", "ci", "/x", "brick", None, fit).key()

    assert key(eval_every=0) == key(eval_every=5) == key(eval_every=5, eval_pro=True, log_every=3)
    assert key(eval_every=5, selection="best_on_test") != key(eval_every=1, selection="best_on_test")
    assert key(seed=1) != key(seed=2)
    assert FitConfig(checkpoint_seconds=60).key_dict() == FitConfig().key_dict()


def test_recorded_evaluations_cover_a_request_when_at_least_as_frequent():
    rec = FitConfig(eval_every=5, eval_pro=True).evaluation()
    assert FitConfig(eval_every=10).covered_by(rec) and FitConfig(eval_every=5, eval_pro=True).covered_by(rec)
    assert not FitConfig(eval_every=2).covered_by(rec) and not FitConfig(eval_every=1).covered_by(None)
    assert not FitConfig(eval_every=5, eval_pro=True).covered_by(FitConfig(eval_every=5).evaluation())
    assert FitConfig(eval_every=0).covered_by(None) and FitConfig().covered_by(None)


def test_a_run_without_the_evaluations_asked_for_is_retrained_with_identical_weights(tiny_benchmark, tmp_path):
    plain = RunSpec.from_profile("rd", "ci", tiny_benchmark, "brick", {"epochs": 2}, {"batch_size": 3})
    curves = RunSpec.from_profile("rd", "ci", tiny_benchmark, "brick", {"epochs": 2}, {"batch_size": 3, "eval_every": 1})
    assert plain.key() == curves.key()
    a = get_or_train(plain, tmp_path, progress=False)
    w0 = torch.load(a.dir / "checkpoint.pt", weights_only=False)["method"]
    assert not curves.finished(tmp_path) and plain.finished(tmp_path)
    b = get_or_train(curves, tmp_path, progress=False)
    assert b.dir == a.dir and any("test_i_auroc" in h for h in b.history)
    w1 = torch.load(b.dir / "checkpoint.pt", weights_only=False)["method"]
    flat = lambda sd: {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)} if isinstance(sd, dict) else {}  # noqa: E731
    if flat(w0):
        assert all(torch.equal(flat(w0)[k], flat(w1)[k]) for k in flat(w0))
    assert b.metrics == a.metrics
    assert get_or_train(plain, tmp_path, progress=False).history == b.history   # curves kept: reused as it is


def test_stale_runs_are_reported_never_reused_and_removed_on_request(tiny_benchmark, tmp_path, repo_copy, capsys):
    from rdlib.__main__ import main

    runs = tmp_path / "runs"
    spec = RunSpec.from_profile("patch_knn", "ci", tiny_benchmark, "brick")
    old = get_or_train(spec, runs, progress=False)
    assert json.loads((old.dir / "config.json").read_text())["code"] == spec.code()
    assert stale_runs(runs) == []
    _edit(repo_copy / "rdlib/methods/patchknn/model.py")
    provenance.clear_cache()
    assert stale_runs(runs) == [(old.dir, "the code it executes changed")]
    with pytest.raises(RunError, match="stale run .the code it executes changed."):
        load_run(old.dir)
    assert not spec.finished(runs) and spec.dir(runs) != old.dir            # the lookup never finds the old folder
    assert main(["runs", "stale", "--runs-dir", str(runs)]) == 0
    assert f"stale: {old.dir}" in capsys.readouterr().out and old.dir.is_dir()
    foreign = runs / "toy_method" / "brick" / "abc"                         # a method not registered here
    foreign.mkdir(parents=True)
    (foreign / "config.json").write_text(json.dumps({"spec": {**json.loads((old.dir / "config.json").read_text())["spec"],
                                                              "method": "toy_method"}}))
    assert main(["runs", "stale", "--runs-dir", str(runs), "--remove"]) == 0
    assert not old.dir.exists() and stale_runs(runs) == [] and foreign.is_dir()       # never removed unchecked
