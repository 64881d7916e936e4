"""Sweeps on Dask distributed: two local worker processes, one deliberately failing task (a corrupt image in one
category), the failure reported with its traceback, the others finished, one table, and a rerun that skips what
finished and retrains only what failed once the image is repaired."""
from pathlib import Path
import shutil

import pandas as pd
import pytest

from rdlib.sweep import SweepTask, plan, read_table, run_sweep, write_table

pytest.importorskip("distributed")


def test_sweep_on_two_local_workers_survives_a_failing_task_and_resumes(tiny_benchmark, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_benchmark, data)
    bad = data / "coffee" / "train" / "good" / "000.png"
    good_bytes = bad.read_bytes()
    bad.write_bytes(good_bytes[:40])                                   # truncated PNG: coffee's run must fail
    runs, table = tmp_path / "runs", tmp_path / "sweep.csv"
    tasks = plan(["rd"], ["brick", "coffee"], seeds=[0, 1], profile="ci", data_root=data) \
        + plan(["patch_knn"], ["brick"], seeds=[0], profile="ci", data_root=data)
    assert len(tasks) == 5

    result = run_sweep(tasks, table=table, runs_root=runs, workers=2, threads=1)
    assert result.n_workers == 2 and result.submitted == 5
    rows = result.rows.set_index(["method", "category", "seed"])
    assert set(rows.status) == {"trained", "failed"}
    assert (rows.loc[("rd", "brick", 0), "status"], rows.loc[("patch_knn", "brick", 0), "status"]) == ("trained", "trained")
    assert len(result.failures) == 2 and {f.task.category for f in result.failures} == {"coffee"}
    report = result.report()
    assert "FAILED rd/coffee/seed 0" in report and "000.png" in report and "Traceback" in report
    on_disk = read_table(table)
    assert len(on_disk) == 5 and set(on_disk.key) == set(result.rows.key)
    assert on_disk[on_disk.status == "failed"].error.str.contains("000.png").all()
    assert on_disk[on_disk.status == "trained"].i_auroc.notna().all()
    finished_dirs = list(on_disk[on_disk.status == "trained"].run_dir)
    stamps = {d: (tmp_path / d / "checkpoint.pt").stat().st_mtime_ns for d in finished_dirs}

    bad.write_bytes(good_bytes)                                        # repaired: the rerun trains only coffee
    again = run_sweep(tasks, table=table, runs_root=runs, workers=2, threads=1)
    assert again.ok and again.submitted == 2
    status = again.rows.set_index(["method", "category", "seed"]).sort_index().status
    assert (status.loc[("rd", "brick")] == "reused").all() and status.loc[("patch_knn", "brick", 0)] == "reused"
    assert (status.loc[("rd", "coffee")] == "trained").all()
    assert {d: (tmp_path / d / "checkpoint.pt").stat().st_mtime_ns for d in finished_dirs} == stamps
    final = read_table(table)
    assert len(final) == 5 and (final.status != "failed").all() and final.i_auroc.notna().all()


def test_plan_checks_everything_before_running(tiny_benchmark):
    with pytest.raises(ValueError, match=r"categories \['carpet'\] not found.*available: \['brick', 'coffee'\]"):
        plan(["rd"], ["brick", "carpet"], seeds=[0], profile="ci", data_root=tiny_benchmark)
    with pytest.raises(Exception, match="unknown method 'rdx'"):
        plan(["rdx"], ["brick"], seeds=[0], profile="ci", data_root=tiny_benchmark)
    with pytest.raises(Exception, match="epochz"):
        plan(["rd"], ["brick"], seeds=[0], profile="ci", data_root=tiny_benchmark, options={"epochz": 3})
    with pytest.raises(ValueError, match="at least one"):
        plan(["rd"], ["brick"], seeds=[], profile="ci", data_root=tiny_benchmark)
    tasks = plan(["rd", "rdpp"], ["brick", "coffee"], seeds=[0, 1, 2], profile="ci", data_root=tiny_benchmark)
    assert len(tasks) == 12 and len({t.spec().key() for t in tasks}) == 12     # seeds and methods give distinct runs
    assert isinstance(tasks[0], SweepTask) and tasks[0].spec().fit["seed"] == 0
    curves = plan(["rd"], ["brick"], seeds=[0], profile="ci", data_root=tiny_benchmark, fit={"eval_every": 1})
    assert curves[0].spec().fit == {**tasks[0].spec().fit, "eval_every": 1}
    assert curves[0].spec().key() == tasks[0].spec().key()                    # evaluating while training: same run
    with pytest.raises(ValueError, match="unknown fit setting.*evaluate_every"):
        plan(["rd"], ["brick"], seeds=[0], profile="ci", data_root=tiny_benchmark, fit={"evaluate_every": 1})


def test_table_merges_by_task_and_the_newest_row_wins(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, pd.DataFrame([{"variant": "rd", "method": "rd", "category": "a", "seed": 0, "profile": "ci", "task": "t1", "key": "k1",
                                     "status": "failed"},
                                    {"variant": "rd", "method": "rd", "category": "b", "seed": 0, "profile": "ci", "task": "t2", "key": "k2",
                                     "status": "trained"}]))
    merged = write_table(path, pd.DataFrame([{"variant": "rd", "method": "rd", "category": "a", "seed": 0, "profile": "ci", "task": "t1", "key": "k3",
                                              "status": "trained", "i_auroc": 90.0}]))
    assert list(merged.key) == ["k3", "k2"] and list(merged.status) == ["trained", "trained"]
    assert read_table(path).i_auroc.iloc[0] == 90.0
    path.write_text("\x00\x01garbage")
    with pytest.raises(ValueError, match="unreadable sweep table"):
        read_table(path)


def test_cli_refuses_bad_sweep_arguments_before_starting_a_cluster(tiny_benchmark, capsys):
    from rdlib.__main__ import main

    base = ["sweep", "--data", str(tiny_benchmark), "--profile", "ci"]
    assert main([*base, "--methods", "rd", "--categories", "brick,carpet"]) == 2
    assert "['carpet'] not found" in capsys.readouterr().err
    assert main([*base, "--methods", "rd", "--categories", "brick", "--seeds", "0,x"]) == 2
    assert "--seeds '0,x': expected integers" in capsys.readouterr().err
    assert main([*base, "--methods", "rd", "--categories", "brick", "-o", "epochz=2"]) == 2
    assert "epochz" in capsys.readouterr().err


def test_address_joins_an_existing_cluster_and_tasks_ask_for_the_gpu_its_workers_declare(tiny_benchmark, tmp_path):
    from distributed import LocalCluster

    tasks = plan(["patch_knn"], ["brick"], seeds=[0], profile="ci", data_root=tiny_benchmark)
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None, resources={"GPU": 1}) as cluster:
        result = run_sweep(tasks, runs_root=tmp_path / "runs", address=cluster.scheduler_address)
    assert result.ok and result.n_workers == 1 and result.resources == {"GPU": 1}
    assert result.rows.status.tolist() == ["trained"]
    assert result.rows.device.tolist() == ["cuda:0" if __import__("torch").cuda.is_available() else "cpu"]
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:   # no GPU declared
        with pytest.raises(RuntimeError, match="no worker .* declares one"):
            run_sweep(plan(["rd"], ["brick"], seeds=[0], profile="ci", data_root=tiny_benchmark),
                      runs_root=tmp_path / "runs", address=cluster.scheduler_address, gpus=True)


def test_run_grid_on_two_workers_trains_every_run_there_into_one_table(tiny_benchmark, tmp_path):
    """``run_grid(workers=2)``: every run (fit overrides and seeds included) trains on the workers; the table has a
    row per run in the grid's order, with the same format as a sweep's; a failing cell is a row naming the file."""
    import os

    import rdlib.experiments as ex
    from rdlib.runs import RunSpec
    from rdlib.sweep import ROW_KEYS

    data = tmp_path / "data"
    shutil.copytree(tiny_benchmark, data)
    bad = data / "coffee" / "train" / "good" / "000.png"
    bad.write_bytes(bad.read_bytes()[:40])
    runs = tmp_path / "runs"
    variants = {"plain": {"options": {"epochs": 1}}, "batch 3": {"options": {"epochs": 1}, "fit": {"batch_size": 3}}}
    grid = ex.run_grid("rd", "ci", data, ["brick", "coffee"], variants, seeds=[0, 1], runs_dir=runs, workers=2)
    assert set(ROW_KEYS) <= set(grid.columns) and {"error", "image_size", "steps", "run_dir"} <= set(grid.columns)
    assert list(zip(grid.variant, grid.category, grid.seed)) == [(v, c, s) for v in variants for c in ("brick", "coffee")
                                                                  for s in (0, 1)]
    ok, failed = grid[grid.status != "failed"], grid[grid.status == "failed"]
    assert set(ok.status) == {"trained"} and set(ok.category) == {"brick"} and ok.i_auroc.notna().all()
    assert len(failed) == 4 and failed.error.str.contains("000.png").all()
    assert (ok.worker_pid != os.getpid()).all()                                  # 4 runs, 2 workers: none here
    expected = {RunSpec.from_profile("rd", "ci", data, "brick", v["options"], {**v.get("fit", {}), "seed": s}).key()
                for v in variants.values() for s in (0, 1)}
    assert set(ok.key) == expected                                               # batch size and seed kept
    assert {p.name for p in (runs / "rd" / "brick").iterdir()} == expected
    again = ex.run_grid("rd", "ci", data, ["brick"], variants, seeds=[0, 1], runs_dir=runs, workers=2)
    assert set(again.status) == {"reused"} and set(again.key) == expected


def test_a_lone_last_run_trains_in_the_caller_with_every_core(tiny_benchmark, tmp_path):
    """3 unfinished runs on 2 workers: two go to the workers, the third trains in the caller's process (not alone on
    a one-thread worker); with one unfinished run left it trains here too. Same keys, same table."""
    import os

    import rdlib.experiments as ex

    runs = tmp_path / "runs"
    variants = {"plain": {"options": {"epochs": 1}}}
    grid = ex.run_grid("rd", "ci", tiny_benchmark, ["brick"], variants, seeds=[0, 1, 2], runs_dir=runs, workers=2)
    here = grid.set_index("seed").worker_pid == os.getpid()
    assert list(here) == [False, False, True] and (grid.status == "trained").all() and grid.i_auroc.notna().all()
    grid = ex.run_grid("rd", "ci", tiny_benchmark, ["brick"], variants, seeds=[0, 1, 2, 3], runs_dir=runs, workers=2)
    assert list(grid.status) == ["reused", "reused", "reused", "trained"] and grid.worker_pid.iloc[3] == os.getpid()
    assert len({p.name for p in (runs / "rd" / "brick").iterdir()}) == 4


def test_rescored_variants_reuse_the_trained_runs_and_say_so(tiny_benchmark, tmp_path):
    """A re-scored variant trains nothing: its rows carry the trained run's key and design, status 'rescored', and
    metrics of the same model scored otherwise (RD with the deepest map only)."""
    import rdlib.experiments as ex
    from rdlib.runs import load_run

    grid = ex.run_grid("rd", "ci", tiny_benchmark, ["brick"], {"all maps": {"options": {"epochs": 1}}}, seeds=[0, 1],
                       runs_dir=tmp_path, rescored={"M3": ("all maps", {"levels": (2,)})})
    trained, rescored = grid[grid.variant == "all maps"], grid[grid.variant == "M3"]
    assert list(rescored.status) == ["rescored", "rescored"] and list(rescored.key) == list(trained.key)
    assert list(rescored.steps) == list(trained.steps)
    want = ex.rescore(load_run(trained.run_dir.iloc[0]), {"M3": {"levels": (2,)}})["M3"]["i_auroc"]
    assert rescored.i_auroc.iloc[0] == pytest.approx(want)
    with pytest.raises(ValueError, match="not a trained variant"):
        ex.run_grid("rd", "ci", tiny_benchmark, ["brick"], {"a": {}}, runs_dir=tmp_path, rescored={"b": ("z", {})})


def test_tasks_that_ask_for_the_same_run_each_get_their_row(tiny_benchmark, tmp_path):
    """Two variants whose settings give one run key (evaluation settings do not change the weights) train it once
    and both keep their row, on the workers as in this process."""
    import rdlib.experiments as ex

    variants = {"a": {"options": {"epochs": 1}}, "b": {"options": {"epochs": 1}, "fit": {"log_every": 3}},
                "c": {"options": {"epochs": 2}}}
    for workers, runs in ((2, tmp_path / "w"), (1, tmp_path / "here")):
        grid = ex.run_grid("rd", "ci", tiny_benchmark, ["brick"], variants, seeds=[0], runs_dir=runs, workers=workers)
        assert list(grid.variant) == ["a", "b", "c"] and grid.key.iloc[0] == grid.key.iloc[1] != grid.key.iloc[2]
        assert list(grid.status) == ["trained", "reused", "trained"] and grid.i_auroc.iloc[0] == grid.i_auroc.iloc[1]
        assert len(list((runs / "rd" / "brick").iterdir())) == 2


def test_local_workers_keep_glibc_default_trimming_and_the_thread_count():
    """Dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers by default, which made PyTorch training there twice as
    slow; the local cluster leaves it out and gives every worker the requested thread count."""
    import os

    from rdlib.sweep import _client

    client, owned = _client(None, workers=2, threads=1, use_gpu=False)
    assert not owned
    env = client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")))
    assert len(env) == 2 and set(env.values()) == {(None, "1")}
    assert _client(None, workers=2, threads=1, use_gpu=False)[0] is client          # kept for the next sweep


def test_the_comparison_trains_other_seeds_only_for_methods_at_their_plateau(tiny_benchmark, tmp_path, monkeypatch):
    import rdlib.plateau
    from rdlib import comparison

    runs, seen = tmp_path / "runs", {}
    kw = dict(data_format=None, runs_dir=runs, workers=1, labels={"rd": "RD"})
    swept = comparison.sweep_to_plateau(["rd", "patch_knn"], ["brick", "coffee"], [0, 1], "ci", tiny_benchmark,
                                        {"rd": 1}, **kw)
    p = swept.plateaus["rd"]                        # two categories' curves, real rule: no statement on the method
    assert set(swept.plateaus) == {"rd"} and not p.converged and "2 categories" in p.why and p.label == "RD"
    assert swept.skipped == ["rd"] and len(p.curve) >= 2                     # every evaluation of the ci schedule
    assert set(swept.curves) == {"rd"} and set(swept.curves["rd"].category) == {"brick", "coffee"}
    done = swept.rows.set_index(["method", "category", "seed"]).status
    assert sorted(done.index) == sorted([("rd", c, 0) for c in ("brick", "coffee")]
                                        + [("patch_knn", c, s) for c in ("brick", "coffee") for s in (0, 1)])
    assert all(t.fit.get("eval_every") == 1 for t in swept.tasks if t.method == "rd")

    real = rdlib.plateau.plateau

    def converged(curves, label, **k):               # the same curves, judged converged: the gate opens
        seen[label] = sorted(curves.category.unique())
        return real(curves, label, min_categories=2, tol=100.0, flat=0.0, tail=1, drift=1e3)

    monkeypatch.setattr(rdlib.plateau, "plateau", converged)
    again = comparison.sweep_to_plateau(["rd", "patch_knn"], ["brick", "coffee"], [0, 1], "ci", tiny_benchmark,
                                        {"rd": 1}, **kw)
    assert seen == {"RD": ["brick", "coffee"]} and again.skipped == [] and again.plateaus["rd"].converged
    status = again.rows.set_index(["method", "category", "seed"]).status
    assert len(status) == 8 and (status.xs(0, level="seed") == "reused").all()    # the first stage's runs reused
    assert (status.loc["rd"].xs(1, level="seed") == "trained").all()
    table = again.plateau_table({"rd": "RD"})
    assert table.loc["RD", "plateau"] == "converged" and table.loc["RD", "why not"] == "—"


def test_the_report_names_the_table_without_the_machines_path(tmp_path, monkeypatch):
    import pandas as pd

    from rdlib.sweep import SweepResult

    rows = pd.DataFrame({"status": ["reused"]})
    far = SweepResult(rows, [], Path("/srv/build/x/runs/sweeps/book.csv")).report()
    assert far.endswith("table …/runs/sweeps/book.csv") and "/srv" not in far
    monkeypatch.chdir(tmp_path)
    near = SweepResult(rows, [], tmp_path / "runs" / "sweeps" / "ci.csv").report()
    assert near.endswith("; table runs/sweeps/ci.csv")
