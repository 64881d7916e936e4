"""Sweeps on Dask distributed: two local worker processes, one deliberately failing task (a corrupt image in one
category), the failure reported with its traceback, the others finished, one table, and a rerun that skips what
finished and retrains only what failed once the image is repaired."""
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
    assert (status.loc[("rd", "brick")] == "skipped").all() and status.loc[("patch_knn", "brick", 0)] == "skipped"
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


def test_table_merges_by_task_and_the_newest_row_wins(tmp_path):
    path = tmp_path / "t.csv"
    write_table(path, pd.DataFrame([{"method": "rd", "category": "a", "seed": 0, "profile": "ci", "task": "t1", "key": "k1",
                                     "status": "failed"},
                                    {"method": "rd", "category": "b", "seed": 0, "profile": "ci", "task": "t2", "key": "k2",
                                     "status": "trained"}]))
    merged = write_table(path, pd.DataFrame([{"method": "rd", "category": "a", "seed": 0, "profile": "ci", "task": "t1", "key": "k3",
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


def test_run_grid_on_two_workers_trains_the_exact_runs_the_serial_grid_reads(tiny_benchmark, tmp_path, monkeypatch):
    """``run_grid(workers=2)``: every run (fit overrides and seeds included) is trained on the workers before the
    table is read, so the caller only loads finished runs of the same keys; a failing cell is a row naming the file."""
    import rdlib.experiments as ex

    data = tmp_path / "data"
    shutil.copytree(tiny_benchmark, data)
    bad = data / "coffee" / "train" / "good" / "000.png"
    bad.write_bytes(bad.read_bytes()[:40])
    runs = tmp_path / "runs"
    loaded = []

    def only_finished(spec, runs_dir=None, **kw):
        finished = (spec.dir(runs_dir) / "metrics.json").is_file()
        assert finished or spec.category == "coffee", f"{spec.category} was not trained on a worker"
        loaded.append((spec.category, spec.key()))
        return original(spec, runs_dir, **kw)

    original = ex.get_or_train
    monkeypatch.setattr(ex, "get_or_train", only_finished)
    variants = {"plain": {"options": {"epochs": 1}}, "batch 3": {"options": {"epochs": 1}, "fit": {"batch_size": 3}}}
    grid = ex.run_grid("rd", "ci", data, ["brick", "coffee"], variants, seeds=[0, 1], runs_dir=runs, workers=2)
    assert len(grid) == 8
    ok, failed = grid[grid.status == "ok"], grid[grid.status != "ok"]
    assert set(ok.category) == {"brick"} and len(ok) == 4 and ok.i_auroc.notna().all()
    assert len(failed) == 4 and failed.status.str.contains("000.png").all()
    assert all(cat == "brick" for cat, _ in loaded)                 # coffee's failures were not retried here
    from rdlib.runs import RunSpec

    expected = {RunSpec.from_profile("rd", "ci", data, "brick", v["options"], {**v.get("fit", {}), "seed": s}).key()
                for v in variants.values() for s in (0, 1)}
    assert {k for _, k in loaded} == expected                                   # 4 distinct keys: batch size and seed kept
    assert {p.name for p in (runs / "rd" / "brick").iterdir()} == expected


def test_a_lone_last_run_trains_in_the_caller_with_every_core(tiny_benchmark, tmp_path, monkeypatch):
    """3 unfinished runs on 2 workers: two go to the workers, the third trains in the caller's process (not alone on
    a one-thread worker); with one unfinished run left no cluster is used at all. Same keys, same table."""
    import rdlib.experiments as ex
    import rdlib.sweep as sw

    runs = tmp_path / "runs"
    submitted, loaded = [], []
    real_sweep, real_get = sw.run_sweep, ex.get_or_train

    def spy_sweep(tasks, **kw):
        submitted.append(sorted(t.seed for t in tasks))
        return real_sweep(tasks, **kw)

    def spy_get(spec, runs_dir=None, **kw):
        loaded.append((spec.fit_config().seed, spec.finished(runs_dir)))
        return real_get(spec, runs_dir, **kw)

    monkeypatch.setattr(sw, "run_sweep", spy_sweep)
    monkeypatch.setattr(ex, "get_or_train", spy_get)
    variants = {"plain": {"options": {"epochs": 1}}}
    grid = ex.run_grid("rd", "ci", tiny_benchmark, ["brick"], variants, seeds=[0, 1, 2], runs_dir=runs, workers=2)
    assert submitted == [[0, 1]]
    assert loaded == [(0, True), (1, True), (2, False)]                  # seed 2 trained here, after the workers
    assert (grid.status == "ok").all() and grid.i_auroc.notna().all() and len(grid) == 3
    submitted.clear()
    loaded.clear()
    grid = ex.run_grid("rd", "ci", tiny_benchmark, ["brick"], variants, seeds=[0, 1, 2, 3], runs_dir=runs, workers=2)
    assert submitted == [] and loaded == [(0, True), (1, True), (2, True), (3, False)]
    assert (grid.status == "ok").all() and len({p.name for p in (runs / "rd" / "brick").iterdir()}) == 4


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
