"""The one way runs are executed: labelled training runs (variant × method × category × seed) as tasks, run in the
calling process, on a local **Dask distributed** cluster, or on an existing one, into one long table.

    tasks = plan(["rd", "rdpp"], ["brick", "coffee"], seeds=[0, 1, 2], profile="book", data_root="embedded")
    result = run_sweep(tasks, table="runs/sweep-book.csv")                  # a local cluster, 2 worker processes
    result = run_sweep(tasks, table=..., address="tcp://scheduler:8786")    # an existing Dask cluster
    result = run_sweep(tasks, workers=1)                                   # in this process
    print(result.report())                                                 # failures with their tracebacks

Each task is one :func:`rdlib.runs.get_or_train` call, so a task's result is a run folder keyed by its full
configuration: a task whose run has finished is not submitted again (an interrupted sweep resumes; a run that was
cut off mid-training resumes from its checkpoint). A failing task does not stop the others: its exception and
traceback are collected and reported at the end, and it gets a ``failed`` row. Every task gives one row of the same
format (:data:`ROW_KEYS`, the metrics, the design columns a verdict names: image size, optimizer steps; training
seconds, device, run folder), with status ``trained``, ``reused`` or ``failed`` (and ``error``), in the order of the
tasks; :func:`rdlib.experiments.run_grid` and the CLI ``sweep`` both produce it. With ``table`` the rows are also
merged (by task) into a CSV or Parquet file.

On a CPU with a local cluster, when the runs to train leave one over after full rounds (5 runs on 2 workers), that
last run trains in the calling process with every core instead of alone on a one-thread worker while the other
cores idle (four 8-epoch RD runs at 128²: 15.2 s a run alone with 2 threads, 24.3 s a run on each of two
1-thread workers); two 1-thread workers finished four 128² RD runs 1.25 times as fast as one process with two
threads.

Where GPUs exist every task asks the scheduler for one (Dask resource ``GPU``): a local cluster's workers each
declare one GPU (and use ``cuda:<worker index mod GPU count>``); on an existing cluster, start the workers with
``dask worker --resources GPU=1`` (one per GPU, ``CUDA_VISIBLE_DEVICES`` set) and tasks request it when any worker
advertises it. Dask was chosen over Ray for being pure Python (no raylet or object-store daemons to start on a
2-core machine), for ``LocalCluster`` needing no server, and for futures that carry their remote traceback.
"""
from __future__ import annotations

import atexit
import logging
import os
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

ROW_KEYS = ("variant", "method", "category", "seed", "profile", "task", "key", "status")
STATUSES = ("trained", "reused", "failed")


@dataclass
class SweepTask:
    """One training run: a method's profile on one category with one seed (plus option and loop-setting
    overrides), under a label (``variant``; the method's name when not given)."""

    method: str
    category: str
    seed: int
    profile: str = "book"
    data_root: str = "embedded"
    options: dict = field(default_factory=dict)
    data_format: str | None = None
    fit: dict = field(default_factory=dict)          # loop settings on top of the profile's (the seed is ``seed``)
    variant: str | None = None

    def spec(self):
        from rdlib.runs import RunSpec

        return RunSpec.from_profile(self.method, self.profile, self.data_root, self.category, self.options,
                                    {**self.fit, "seed": int(self.seed)}, self.data_format)

    @property
    def id(self) -> str:
        """What the task asks for (not the data's bytes): a failed row is replaced by the task's next result even
        when repairing the data changed the run key."""
        from rdlib.utils import stable_hash

        return stable_hash(asdict(self))

    @property
    def label(self) -> str:
        return f"{self.variant or self.method}/{self.category}/seed {self.seed}"


def plan(methods, categories, seeds, profile: str = "book", data_root: str | Path = "embedded",
         options: dict | None = None, data_format: str | None = None, fit: dict | None = None) -> list[SweepTask]:
    """The tasks of a sweep, every combination of ``methods × categories × seeds``, checked before anything runs:
    unknown methods, profiles, options, loop settings (``fit``, e.g. ``{"eval_every": 5}``) or categories raise
    with the valid choices. ``data_root="embedded"`` generates (or finds) the embedded benchmark at each method's
    image size here, once, not in the workers."""
    from rdlib.data import generate_embedded, list_categories
    from rdlib.data.embedded import EmbeddedConfig
    from rdlib.runs import RunSpec

    methods, categories, seeds = list(methods), list(categories), [int(s) for s in seeds]
    if not methods or not categories or not seeds:
        raise ValueError(f"a sweep needs at least one method, category and seed (got methods={methods}, "
                         f"categories={categories}, seeds={seeds})")
    tasks = []
    for method in methods:
        probe = RunSpec.from_profile(method, profile, "", categories[0], options, fit, data_format=data_format)
        if str(data_root) == "embedded":
            root = Path(generate_embedded(cfg=EmbeddedConfig(size=probe.data_config().image_size)))
        else:
            root = Path(data_root)
            if not root.is_dir():
                raise FileNotFoundError(f"data root {root}: no such folder; pass a dataset root (MVTec layout) or "
                                        "'embedded'")
        available = list_categories(root, data_format)
        missing = [c for c in categories if c not in available]
        if missing:
            raise ValueError(f"categories {missing} not found under {root}; available: {available}")
        for category in categories:
            for seed in seeds:
                task = SweepTask(method, category, seed, profile, str(root), dict(options or {}), data_format,
                                 dict(fit or {}), variant=method)
                task.spec()                                       # validates the options for this category
                tasks.append(task)
    return tasks


def _worker_device(use_gpu: bool) -> str:
    import torch

    if not use_gpu or not torch.cuda.is_available():
        return "cpu"
    try:
        from distributed import get_worker

        name = get_worker().name
        index = int(name) if str(name).isdigit() else 0           # LocalCluster names its workers 0, 1, ...
    except (ImportError, ValueError):
        index = 0
    return f"cuda:{index % torch.cuda.device_count()}"


def train_task(task: dict, runs_root: str | None, threads: int | None, use_gpu: bool, device: str | None = None,
               progress: bool = False, quiet: bool = False) -> dict:
    """Run one task (in a worker, or in the caller with ``device``): train or reuse its run; its table row.
    ``quiet``: the texture source is not logged (each run records it; a chapter shows it in its protocol table)."""
    import logging

    import torch

    from rdlib.runs import RunSpec, get_or_train

    if quiet:
        logging.getLogger("rdlib.data.textures").setLevel(logging.ERROR)
    if threads:
        torch.set_num_threads(int(threads))
    task = SweepTask(**task)
    spec: RunSpec = task.spec()
    finished = spec.finished(runs_root)
    run = get_or_train(spec, runs_root, device=device or _worker_device(use_gpu), progress=progress)
    return _row(task, run, "reused" if finished else "trained")


def _row(task: SweepTask, run, status: str) -> dict:
    return {"variant": task.variant or task.method, "method": task.method, "category": task.category,
            "seed": int(task.seed), "profile": task.profile, "task": task.id, "status": status,
            **{k: v for k, v in run.metrics.items() if v is not None}, **run.design_row(),
            "train_seconds": run.info.get("train_seconds"), "device": run.info.get("device"),
            "worker_pid": os.getpid(), "run_dir": str(run.dir), "error": ""}


def _failed_row(task: SweepTask, key: str, error: str) -> dict:
    return {"variant": task.variant or task.method, "method": task.method, "category": task.category,
            "seed": int(task.seed), "profile": task.profile, "task": task.id, "key": key, "status": "failed",
            "error": error}


@dataclass
class SweepFailure:
    task: SweepTask
    key: str
    error: str
    traceback: str


@dataclass
class SweepResult:
    rows: pd.DataFrame                   # one row per task, in the tasks' order (trained, reused and failed)
    failures: list[SweepFailure]
    table: Path | None
    n_workers: int = 0
    submitted: int = 0
    resources: dict | None = None        # what each submitted task asked the scheduler for

    @property
    def ok(self) -> bool:
        return not self.failures

    def report(self) -> str:
        counts = self.rows.status.value_counts().to_dict() if len(self.rows) else {}
        lines = [f"sweep: {len(self.rows)} task(s) " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                 + f"; {self.submitted} submitted to {self.n_workers} worker(s)"
                 + (f"; table {_shown(self.table)}" if self.table else "")]
        for f in self.failures:
            lines += [f"FAILED {f.task.label} (run key {f.key}): {f.error}", f.traceback.rstrip()]
        return "\n".join(lines)


def _shown(path: Path) -> str:
    """A path as a report prints it: relative to the working folder when inside it, else its last three parts
    (no machine-specific prefix on a book page)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(Path("…", *path.parts[-3:])) if len(path.parts) > 3 else str(path)


def read_table(path: str | Path) -> pd.DataFrame:
    """A sweep table (CSV or Parquet by suffix); an empty frame when it does not exist yet."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=list(ROW_KEYS))
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=False,
                                                                                     na_values=[""])
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: unreadable sweep table ({type(e).__name__}: {e}); move it away to start a new "
                         "one") from None
    missing = [c for c in ROW_KEYS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: unreadable sweep table (columns {missing} missing); move it away to start a new "
                         "one")
    return frame


def write_table(path: str | Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Merge ``rows`` into the table at ``path`` (a row per task, the newest wins) and write it atomically."""
    path = Path(path)
    old = read_table(path)
    merged = pd.concat([old[~old.task.isin(rows.task)], rows], ignore_index=True) if len(old) else rows
    merged = merged.sort_values(["method", "category", "seed"], kind="stable").reset_index(drop=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".parquet":
        try:
            merged.to_parquet(tmp, index=False)
        except ImportError as e:
            raise ImportError(f"{path}: Parquet needs pyarrow (pip install pyarrow), or name the table .csv") from e
    else:
        merged.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return merged


_LOCAL_CLIENTS: dict = {}          # (workers, threads, gpu) -> Client of a local cluster, kept for the next sweep


def _client(address: str | None, workers: int, threads: int, use_gpu: bool):
    """A client of the cluster at ``address`` (closed by the caller), or of a local cluster started once per process
    and kept (a chapter runs many small grids; starting workers that import torch costs seconds each time)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise ImportError("sweeps run on Dask distributed: pip install 'rdlib[sweep]' (dask[distributed])") from e
    if not log.isEnabledFor(logging.INFO):                    # the scheduler's chatter only under -v
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if address:
        return Client(address), True
    key = (workers, threads, bool(use_gpu))
    client = _LOCAL_CLIENTS.get(key)
    if client is not None and client.status == "running" and len(client.scheduler_info()["workers"]) == workers:
        return client, False
    if client is not None:
        _close(client)
    # Dask's default MALLOC_TRIM_THRESHOLD_=65536 for workers made PyTorch training twice as slow in them (memory
    # handed back to the OS after every large tensor; measured: a 4-epoch RD run 14 s vs 7 s), so it is left out.
    # The workers' own "Compute Failed" logs are silenced: run_sweep collects each failure with its traceback.
    import dask

    n = str(threads)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n,
                                                                  "OPENBLAS_NUM_THREADS": n}}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               resources={"GPU": 1} if use_gpu else None, silence_logs=logging.CRITICAL)
    _LOCAL_CLIENTS[key] = client = Client(cluster)
    return client, False


def _close(client) -> None:
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


def close_local_clusters() -> None:
    """Stop the local clusters sweeps started in this process (also done at exit)."""
    while _LOCAL_CLIENTS:
        try:
            _close(_LOCAL_CLIENTS.popitem()[1])
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass


atexit.register(close_local_clusters)


def run_sweep(tasks: list[SweepTask], table: str | Path | None = None, runs_root: str | Path | None = None,
              address: str | None = None, workers: int = 2, threads: int | None = None,
              gpus: bool | None = None, warn: bool = True, device: str | None = None,
              progress: bool = False) -> SweepResult:
    """Run ``tasks``: finished runs are reused, not submitted; the others train on Dask — a
    :class:`distributed.LocalCluster` of ``workers`` processes (``threads`` torch threads each, default the cores
    shared out) or the cluster at ``address`` — or, with ``workers`` = 1 and no address, or a ``device`` other than
    the CPU without an address, in this process on ``device``. A straggler after full rounds of a local CPU
    cluster trains here too (module doc). Failures are collected, not raised. ``gpus``: ask one GPU per task
    (default: when this machine, or a worker of the cluster, has one). ``warn``: log each failure as it comes."""
    from rdlib.runs import default_runs_dir, load_run
    from rdlib.utils import default_device

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    runs_root = str(runs_root or default_runs_dir())
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    rows: dict[int, dict] = {}
    failures, todo = [], []

    def failed(i, task, key, exc, tb):
        failures.append(SweepFailure(task, key, f"{type(exc).__name__}: {exc}", tb))
        rows[i] = _failed_row(task, key, f"{type(exc).__name__}: {exc}")
        (log.warning if warn else log.info)("task %s failed: %s: %s", task.label, type(exc).__name__, exc)

    if table is not None:
        read_table(table)                                          # an unreadable table stops the sweep before it starts
    same_run: dict[str, list] = {}                                 # run key → the other tasks that ask for that run
    for i, task in enumerate(tasks):
        try:
            spec = task.spec()
            key = spec.key()
            if spec.finished(runs_root):
                rows[i] = _row(task, load_run(spec, runs_root), "reused")         # finished earlier: not submitted
            elif key in same_run:
                same_run[key].append((i, task))                    # trained once, by the first task that asks
            else:
                same_run[key] = []
                todo.append((i, task, key))
        except Exception as e:  # noqa: BLE001 - an invalid task is a failed row
            failed(i, task, "", e, traceback.format_exc())
    parallel = bool(address) or (workers > 1 and str(device or "cpu").startswith("cpu"))
    to_train = len(todo)
    here, todo = ([], todo) if parallel else (todo, [])
    if parallel and not address and len(todo) % workers == 1:
        here = [todo.pop()]                                        # the straggler trains here with every thread
    n_workers, resources = 0, None
    if parallel and todo:
        import torch

        local_gpu = bool(gpus if gpus is not None else torch.cuda.is_available())
        client, owned = _client(address, workers, threads, local_gpu)
        try:
            info = client.scheduler_info()["workers"]
            n_workers = len(info)
            advertised = any(w.get("resources", {}).get("GPU", 0) >= 1 for w in info.values())
            use_gpu = gpus if gpus is not None else (advertised if address else local_gpu)
            if use_gpu and not advertised:                   # the scheduler would hold every task forever
                raise RuntimeError(f"tasks ask for a GPU but no worker of {address or 'the local cluster'} declares "
                                   "one: start workers with `dask worker <scheduler> --resources GPU=1`, or drop --gpu")
            resources = {"GPU": 1} if use_gpu else None
            from distributed import as_completed

            futures = {client.submit(train_task, asdict(task), runs_root, threads, bool(use_gpu), quiet=not warn,
                                     key=f"rdlib-run-{key}", pure=False, resources=resources, retries=0): (i, task, key)
                       for i, task, key in todo}
            for fut in as_completed(futures):
                i, task, key = futures[fut]
                if fut.status == "error":
                    exc = fut.exception()
                    failed(i, task, key, exc, "".join(traceback.format_exception(type(exc), exc, fut.traceback())))
                else:
                    rows[i] = fut.result()
                if table is not None:                              # keep what finished, even if the sweep is cut off
                    write_table(table, pd.DataFrame([rows[i]]))
        finally:
            if owned:
                client.close()
    for i, task, key in here:
        try:
            rows[i] = train_task(asdict(task), runs_root, None, False, device or str(default_device()), progress)
        except Exception as e:  # noqa: BLE001 - a failing run is a row, not a crash
            failed(i, task, key, e, traceback.format_exc())
    for key, others in same_run.items():                       # tasks that asked for a run another task trained
        first = next((rows[i] for i, r in rows.items() if r.get("key") == key), None)
        for i, task in others:
            if first is None or first["status"] == "failed":
                rows[i] = _failed_row(task, key, (first or {}).get("error", "its run was not trained"))
            else:
                rows[i] = {**first, "variant": task.variant or task.method, "task": task.id, "profile": task.profile,
                           "status": "reused"}
    frame = pd.DataFrame([rows[i] for i in sorted(rows)])
    if table is not None and len(frame):
        write_table(table, frame)
    return SweepResult(frame, failures, Path(table) if table is not None else None, n_workers, to_train, resources)
