"""One training loop for every method, plus evaluation.

The loop owns, for every stage a method declares (:class:`rdlib.methods.Stage`):

* the **budget**, in epochs or optimizer steps;
* **modes**: the stage's trainable modules (and their parents) in ``train()``, everything else in ``eval()``, and a
  check that no optimizer holds a parameter outside them;
* **seeds**: the data order of epoch *e* comes from a generator seeded with (seed, stage, e), the global RNG is
  re-seeded before step *k* with (seed, stage, k), and a dataset with ``set_epoch`` draws per-item randomness from
  (epoch seed, index) — so a resumed run and a run with ``num_workers > 0`` see exactly the same batches;
* **LR schedulers**, stepped once per unit of the budget and stored in checkpoints;
* **checkpoints**, written atomically after every epoch (epoch budgets) or every ``checkpoint_every`` steps (step
  budgets), with resume that gives bit-identical weights;
* **evaluation** on the test set every ``eval_every`` units (cheap metrics, logged in the history: learning curves)
  and **checkpoint selection** per stage: ``"last"`` (default; RD reports its last epoch) or ``"best_on_test"`` on
  any reported metric, a sum of them (URD: ``p_auroc+pro_rd``) or a method's own metric (AAND: gate precision),
  with an optional early stop (after evaluations without improvement, or once the metric passes a threshold, AAND's
  rule). Best-on-test looks at the test set, so every table that uses it says so.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rdlib.methods.base import Method, Stage
from rdlib.metrics import METRICS, evaluate_maps
from rdlib.utils import atomic_torch_save, default_device, seed_everything, stable_seed

log = logging.getLogger(__name__)
SELECTIONS = ("last", "best_on_test")
CHECKPOINT_FORMAT = 2


@dataclass
class FitConfig:
    """Loop settings (the method's own hyper-parameters are its options).

    ``eval_every``: None → each stage's own schedule; 0 → no evaluation during training; n → every n units.
    ``selection`` / ``selection_metric`` / ``early_stop`` apply to the last stage; ``stage_selection`` sets them for
    any stage by name: ``{"raa": {"selection": "best_on_test", "metric": "gate_precision"}}``.
    """

    batch_size: int = 16
    seed: int = 111
    eval_every: int | None = None
    selection: str = "last"
    selection_metric: str = "i_auroc"
    early_stop: int = 0                 # evaluations without improvement before a stage stops (0: never)
    stop_above: float | None = None     # ... or once the selection metric exceeds this value (AAND: I-AUROC > 99.9)
    stage_selection: dict = field(default_factory=dict)
    eval_pro: bool = False              # PRO metrics in evaluations during training (slow; on when selection uses them)
    checkpoint_every: int = 200         # steps between checkpoints in step-budget stages
    checkpoint_seconds: float = 0.0     # within a stage, skip a checkpoint written less than this many seconds after
                                        # the last (0: after every epoch / checkpoint_every steps); stage ends always save
    log_every: int = 0                  # steps between history records in step-budget stages (0: budget / 100)
    num_workers: int = 0
    device: str | None = None
    progress: bool = True

    NOT_IN_KEY = ("device", "progress", "num_workers", "checkpoint_every", "checkpoint_seconds",   # how, not what
                  "log_every")                                                                  # what is logged
    # What is evaluated during training changes the weights only through a selection on the test set: without one,
    # evaluating every epoch or never gives bit-identical weights (tests/test_training.py), so these leave the key.
    SELECTION_ONLY = ("eval_every", "eval_pro", "selection_metric", "early_stop", "stop_above")

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.eval_every is not None and self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0 or None, got {self.eval_every}")
        if (self.num_workers < 0 or self.checkpoint_every < 1 or self.log_every < 0 or self.early_stop < 0
                or self.checkpoint_seconds < 0):
            raise ValueError("num_workers, log_every, early_stop and checkpoint_seconds must be >= 0 and "
                             "checkpoint_every >= 1")
        _check_rule(self.selection, "selection")
        for name, rule in self.stage_selection.items():
            extra = set(rule) - {"selection", "metric", "early_stop", "stop_above"}
            if extra:
                raise ValueError(f"stage_selection[{name!r}]: unknown key(s) {sorted(extra)}; use selection, metric, "
                                 "early_stop, stop_above")
            _check_rule(rule.get("selection", "last"), f"stage_selection[{name!r}].selection")

    def selects_on_test(self) -> bool:
        """Whether any stage selects its checkpoint on test evaluations (then they change the weights)."""
        return self.selection == "best_on_test" or any(r.get("selection") == "best_on_test"
                                                       for r in self.stage_selection.values())

    def key_dict(self) -> dict:
        """The settings that determine the trained weights (a run's key holds these)."""
        d = asdict(self)
        for k in self.NOT_IN_KEY + (() if self.selects_on_test() else self.SELECTION_ONLY):
            d.pop(k)
        return d

    def evaluation(self) -> dict:
        """What the history of a run trained with these settings records beyond the losses."""
        return {"eval_every": self.eval_every, "eval_pro": self.eval_pro}

    def covered_by(self, recorded: dict | None) -> bool:
        """Whether a run whose history recorded ``recorded`` (:meth:`evaluation`) has every evaluation these
        settings ask for: at least as often (every n units when asked for every multiple of n) and with PRO when
        asked."""
        if not self.eval_every:                          # nothing asked beyond the stages' own schedules
            return True
        every = (recorded or {}).get("eval_every")
        if not every or self.eval_every % every:
            return False
        return bool((recorded or {}).get("eval_pro")) or not self.eval_pro


def _check_rule(rule: str, what: str) -> None:
    if rule not in SELECTIONS:
        raise ValueError(f"{what}={rule!r}; choose from {SELECTIONS} ('best_on_test' selects on the TEST set)")


@dataclass(frozen=True)
class StagePlan:
    """What the loop does in one stage, resolved and validated before training starts."""

    stage: Stage
    eval_every: int
    selection: str
    metric: str
    early_stop: int
    eval_pro: bool
    stop_above: float | None = None


def metric_terms(expr: str) -> list[str]:
    return [t.strip() for t in expr.split("+") if t.strip()]


def plan_stages(method: Method, cfg: FitConfig, has_test_set: bool) -> list[StagePlan]:
    """Resolve every stage's evaluation schedule and selection rule; raise a clear error for a bad one."""
    stages = method.stages()
    names = [s.name for s in stages]
    if not stages or len(set(names)) != len(names):
        raise ValueError(f"{method.name}: stages must be a non-empty list with unique names, got {names}")
    unknown = sorted(set(cfg.stage_selection) - set(names))
    if unknown:
        raise ValueError(f"stage_selection names unknown stage(s) {unknown}; {method.name} has stages {names}")
    plans = []
    for i, st in enumerate(stages):
        last = i == len(stages) - 1
        rule = cfg.stage_selection.get(st.name, dict(selection=cfg.selection, metric=cfg.selection_metric,
                                                         early_stop=cfg.early_stop, stop_above=cfg.stop_above)
                                                    if last else {})
        selection = rule.get("selection", "last")
        metric = rule.get("metric", "i_auroc")
        early = int(rule.get("early_stop", 0))
        above = rule.get("stop_above")
        every = st.eval_every if cfg.eval_every is None else cfg.eval_every
        valid = list(METRICS) + list(method.extra_metric_names(st))
        bad = [t for t in metric_terms(metric) if t not in valid]
        if bad or not metric_terms(metric):
            raise ValueError(f"stage {st.name!r}: selection metric {metric!r} has unknown term(s) {bad}; valid: "
                             f"{valid} (or a sum such as 'p_auroc+pro_rd')")
        if selection == "best_on_test" or early or above is not None:
            if selection != "best_on_test":
                raise ValueError(f"stage {st.name!r}: early_stop / stop_above need selection='best_on_test'")
            if every < 1:
                every = 1                                       # best-on-test needs evaluations: every unit
            if not has_test_set:
                raise ValueError(f"stage {st.name!r}: selection 'best_on_test' needs a test set")
        pro = cfg.eval_pro or any(t in ("pro_rd", "aupro") for t in metric_terms(metric))
        plans.append(StagePlan(st, every, selection, metric, early, pro, None if above is None else float(above)))
    return plans


# ------------------------------------------------------------------------------------------------------ modes
def set_train_modes(method: Method, trains: tuple[str, ...]) -> None:
    """``eval()`` everywhere, then ``train()`` on each module in ``trains`` and the training flag on its parents
    (so a model's ``forward`` knows it is training), never on the rest."""
    method.eval()
    for name in trains:
        try:
            module = method.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{method.name}: stage trains {name!r}, which is not a module of the method") from None
        module.train()
        parts = name.split(".")
        for i in range(len(parts)):
            method.get_submodule(".".join(parts[:i])).training = True


def resolve_trains(method: Method, stage: Stage, optimizers: dict) -> tuple[str, ...]:
    """The stage's trainable modules; check every optimized parameter belongs to one of them."""
    owner = {id(p): n for n, p in method.named_parameters()}
    optimized = {id(p) for opt in optimizers.values() for g in opt.param_groups for p in g["params"]}
    trains = stage.trains
    if not trains:                                          # the modules that directly own optimized parameters
        found = []
        for name, mod in method.named_modules():
            if name and any(id(p) in optimized for p in mod.parameters(recurse=False)):
                found.append(name)
        trains = tuple(found)
    allowed = {id(p) for n in trains for p in method.get_submodule(n).parameters()}
    outside = sorted(owner.get(i, "<not a parameter of the method>") for i in optimized - allowed)
    if outside:
        raise ValueError(f"{method.name} stage {stage.name!r}: optimizers hold parameters outside the stage's "
                         f"trainable modules {list(trains)}: {outside[:5]}")
    return trains


# ------------------------------------------------------------------------------------------------- evaluation
@dataclass
class EvalResult:
    """Per-image predictions of one test set and its metrics (in %). Maps are stored as float16 (half the bytes);
    the metrics are computed on the float32 maps before that rounding."""

    labels: np.ndarray                  # N (0/1)
    scores: np.ndarray                  # N
    maps: np.ndarray                    # N×S×S float16
    masks: np.ndarray                   # N×S×S bool
    defects: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds_per_image: float = math.nan
    notes: list[str] = field(default_factory=list)

    def save(self, path: str | Path) -> None:
        import io

        from rdlib.utils import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, labels=self.labels, scores=self.scores, maps=self.maps, masks=np.packbits(self.masks, axis=-1),
                 mask_width=self.masks.shape[-1], defects=np.array(self.defects))
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path, metrics: dict | None = None) -> "EvalResult":
        with np.load(path, allow_pickle=False) as z:
            masks = np.unpackbits(z["masks"], axis=-1, count=int(z["mask_width"])).astype(bool)
            return cls(z["labels"], z["scores"], z["maps"], masks, z["defects"].tolist(), metrics or {})


@torch.no_grad()
def evaluate(method: Method, dataset: Dataset, batch_size: int = 8, device: str | torch.device | None = None,
             pro: bool = True) -> EvalResult:
    """Predict every test image and compute all metrics (on float32 maps)."""
    device = torch.device(device) if device else next(method.parameters()).device
    method.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    labels, scores, maps, masks = [], [], [], []
    elapsed = 0.0
    for batch in loader:
        x = batch["image"].to(device)
        t0 = time.perf_counter()
        amap, score = method.predict(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - t0
        labels.append(batch["label"].numpy())
        scores.append(score.float().cpu().numpy())
        maps.append(amap[:, 0].float().cpu().numpy())
        masks.append(batch["mask"][:, 0].numpy() > 0.5)
    maps32 = np.concatenate(maps)
    res = EvalResult(np.concatenate(labels), np.concatenate(scores), maps32.astype(np.float16), np.concatenate(masks))
    table = getattr(dataset, "table", None)
    if table is not None:
        res.defects = table["defect"].tolist()
    names = table["image_path"].tolist() if table is not None else None
    res.metrics = evaluate_maps(res.labels, res.scores, res.masks, maps32, pro=pro, notes=res.notes, names=names)
    res.seconds_per_image = elapsed / max(1, len(res.labels))
    for note in res.notes:
        log.warning("%s", note)
    return res


# ----------------------------------------------------------------------------------------------- checkpoints
def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Read a loop checkpoint with ``weights_only=True`` (plain tensors and containers: loading runs no code);
    a damaged or foreign file gives an error that names it."""
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is not a usable checkpoint
        raise RuntimeError(f"{path}: unreadable checkpoint ({type(e).__name__}: {str(e)[:200]}). Delete it to retrain "
                           "from scratch.") from e
    need = {"method", "optimizers", "stage_index", "epoch", "history", "best"}
    if not isinstance(ck, dict) or not need <= set(ck):
        raise RuntimeError(f"{path}: not an rdlib checkpoint (missing {sorted(need - set(ck or {}))}). Delete it to retrain.")
    return ck


def _selection_value(metrics: dict, expr: str) -> float:
    return float(sum(metrics[t] for t in metric_terms(expr)))


@dataclass
class LoopState:
    """What the loop carries across steps, stages and a resume: the position to start from, the history, the best
    evaluation of each stage, the running sums of the current record and the evaluations without improvement."""

    stage_index: int = 0
    epoch: int = 0
    batch: int = 0
    step: int = 0
    history: list = field(default_factory=list)
    best: dict = field(default_factory=dict)
    sums: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    n: int = 0
    stale: int = 0
    optimized: dict = field(default_factory=dict)      # stage → whether it has optimizers (a training-free stage not)

    @classmethod
    def from_checkpoint(cls, ck: dict) -> "LoopState":
        return cls(*(int(ck.get(k, 0)) for k in ("stage_index", "epoch", "batch", "step")), ck["history"],
                   ck["best"] or {}, ck.get("sums", {}), ck.get("counts", {}), ck.get("n", 0), ck.get("stale", 0),
                   ck.get("optimized", {}))

    def optimizer_steps(self) -> int:
        """Optimizer steps over the stages that have optimizers (the last recorded step of each)."""
        last = {}
        for h in self.history:
            last[h.get("stage")] = h["step"]
        return sum(v for k, v in last.items() if self.optimized.get(k, True))

    def enter_stage(self, index: int) -> None:
        self.stage_index, self.epoch, self.batch, self.step = index, 0, 0, 0
        self.sums, self.counts, self.n, self.stale = {}, {}, 0, 0

    def add_logs(self, logs: dict) -> None:
        """Accumulate one step's logs (a log a step leaves out does not count in that key's mean)."""
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1
        self.n += 1

    def record(self, stage: str, epoch: int) -> dict:
        """Append the means since the last record to the history (and start new sums)."""
        rec = {"stage": stage, "epoch": epoch, "step": self.step,
               **{k: v / max(self.counts.get(k, self.n), 1) for k, v in self.sums.items()}}
        self.history.append(rec)
        self.sums, self.n, self.counts = {}, 0, {}
        return rec


class _Loop:
    """One run of :func:`fit`: the method, its data and settings, the loop state, checkpoints and the progress bar."""

    def __init__(self, method: Method, train_set, test_set, cfg: FitConfig, device, run_dir, bar):
        self.method, self.train_set, self.test_set, self.cfg, self.device = method, train_set, test_set, cfg, device
        self.run_dir = Path(run_dir) if run_dir else None
        self.ckpt_path = self.run_dir / "checkpoint.pt" if self.run_dir else None
        self.state = LoopState()
        self.best_memory: dict = {}                 # stage → weights of its best evaluation (in memory)
        self.bar = bar
        self.last_save = time.monotonic()
        self.overhead_seconds = 0.0                 # in-loop evaluations and checkpoint writes: not training time

    def save(self, position: dict, optimizers: dict, schedulers: dict, same_stage: bool) -> None:
        """Write a checkpoint that resumes at ``position`` (atomically; within a stage at most one per
        ``checkpoint_seconds``)."""
        if self.ckpt_path is None:
            return
        if same_stage and time.monotonic() - self.last_save < self.cfg.checkpoint_seconds:
            return                                  # a checkpoint costs ~0.2 s: short CPU runs keep fewer of them
        t0 = self.last_save = time.monotonic()
        st = self.state
        atomic_torch_save({"format": CHECKPOINT_FORMAT, "method": self.method.checkpoint_state(),
                           # at a stage boundary the next stage builds fresh optimizers: store none
                           "optimizers": {k: o.state_dict() for k, o in optimizers.items()} if same_stage else {},
                           "schedulers": {k: s.state_dict() for k, s in schedulers.items()} if same_stage else {},
                           **position, "history": st.history, "best": st.best, "sums": st.sums,
                           "counts": st.counts, "n": st.n, "stale": st.stale, "optimized": st.optimized},
                          self.ckpt_path)
        self.overhead_seconds += time.monotonic() - t0

    def evaluate(self, plan: StagePlan, trains, units: int, epoch: int) -> bool:
        """Evaluate at multiples of eval_every; update the stage's best; return True to stop early (its time is
        counted in ``overhead_seconds``)."""
        if self.test_set is None or plan.eval_every < 1 or units % plan.eval_every:
            return False
        t0 = time.monotonic()
        try:
            return self._evaluate(plan, trains, epoch)
        finally:
            self.overhead_seconds += time.monotonic() - t0

    def _evaluate(self, plan: StagePlan, trains, epoch: int) -> bool:
        method, st, stage = self.method, self.state, plan.stage
        res = evaluate(method, self.test_set, device=self.device, pro=plan.eval_pro)
        metrics = {**res.metrics, **method.extra_metrics(stage, self.test_set, self.device)}
        set_train_modes(method, trains)
        by_step = stage.unit == "step"
        last = st.history[-1] if st.history else {}
        rec = last if last.get("step") == st.step and last.get("stage") == stage.name \
            else st.record(stage.name, epoch + (1 if by_step else 0))
        rec.update({f"test_{k}": v for k, v in metrics.items()})
        if plan.selection != "best_on_test":
            return False
        value = _selection_value(metrics, plan.metric)
        best = st.best.get(stage.name)
        if best is None or value > best["value"]:
            st.best[stage.name] = {"epoch": epoch + (1 if by_step else 0), "step": st.step, "value": value,
                                   "metric": plan.metric}
            self.best_memory[stage.name] = {k: v.detach().clone() for k, v in method.checkpoint_state().items()}
            if self.run_dir is not None:
                atomic_torch_save(self.best_memory[stage.name], self.run_dir / f"best-{stage.name}.pt")
            st.stale = 0
        else:
            st.stale += 1
        if plan.stop_above is not None and value > plan.stop_above:         # AAND's rule: good enough, stop
            return True
        return bool(plan.early_stop and st.stale >= plan.early_stop)

    def run_stage(self, plan: StagePlan, trains, optimizers: dict, schedulers: dict) -> bool:
        """Train one stage from the state's position; returns True when it stopped early."""
        method, cfg, st, stage, bar = self.method, self.cfg, self.state, plan.stage, self.bar
        by_step = stage.unit == "step"
        log_every = cfg.log_every or max(1, stage.length // 100)
        epoch, skip = st.epoch, st.batch

        def postfix(rec: dict) -> None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in rec.items() if k not in ("stage", "epoch", "step")})

        while True:
            epoch_seed = stable_seed(cfg.seed, stage.name, epoch)
            gen = torch.Generator().manual_seed(epoch_seed)
            torch.manual_seed(epoch_seed)
            if hasattr(self.train_set, "set_epoch"):
                self.train_set.set_epoch(epoch_seed)
            set_train_modes(method, trains)
            n_batches = 0
            for bi, batch in enumerate(method.train_batches(self.train_set, stage, cfg.batch_size, gen, self.device,
                                                            cfg.num_workers)):
                n_batches += 1
                if bi < skip:
                    continue
                torch.manual_seed(stable_seed(cfg.seed, stage.name, "step", st.step))
                st.add_logs(method.training_step(batch, optimizers, stage))
                st.step += 1
                if not by_step:
                    continue
                for sch in schedulers.values():
                    sch.step()
                bar.update(1)
                if st.step % log_every == 0 or st.step == stage.length:
                    postfix(st.record(stage.name, epoch + 1))
                stopped = self.evaluate(plan, trains, st.step, epoch)
                if st.step >= stage.length or stopped:
                    return stopped
                if st.step % cfg.checkpoint_every == 0:
                    self.save({"stage_index": st.stage_index, "epoch": epoch, "batch": bi + 1, "step": st.step},
                              optimizers, schedulers, same_stage=True)
            if n_batches == 0:
                raise ValueError(f"{method.name} stage {stage.name!r}: the training set gave no batch (is it empty?)")
            skip = 0
            epoch += 1
            if by_step:
                continue
            for sch in schedulers.values():
                sch.step()
            rec = st.record(stage.name, epoch)
            bar.update(1)
            postfix(rec)
            stopped = self.evaluate(plan, trains, epoch, epoch)
            if epoch >= stage.length or stopped:
                return stopped
            self.save({"stage_index": st.stage_index, "epoch": epoch, "batch": 0, "step": st.step}, optimizers,
                      schedulers, same_stage=True)


def fit(method: Method, train_set: Dataset, test_set: Dataset | None = None, cfg: FitConfig | None = None,
        run_dir: str | Path | None = None, resume: bool = True) -> dict:
    """Train ``method`` through all its stages. Returns ``{"history": [...], "best": {stage: {...}}, "config": ...,
    "optimizer_steps": n, "overhead_seconds": s}`` (``s``: seconds this call spent in in-loop evaluations and
    checkpoint writes, to leave out of a training time).

    With ``run_dir``, checkpoints are written atomically (``checkpoint.pt``) and training resumes from them. After a
    stage with ``best_on_test`` the best evaluated weights are loaded before the next stage (and kept at the end).
    """
    from tqdm.auto import tqdm

    cfg = cfg or FitConfig()
    device = torch.device(cfg.device) if cfg.device else default_device()
    plans = plan_stages(method, cfg, test_set is not None)
    method.to(device)
    seed_everything(cfg.seed)
    loop = _Loop(method, train_set, test_set, cfg, device, run_dir, bar=None)
    resumed = None
    if resume and loop.ckpt_path is not None and loop.ckpt_path.exists():
        resumed = load_checkpoint(loop.ckpt_path, device)
        method.load_checkpoint_state(resumed["method"])
        loop.state = LoopState.from_checkpoint(resumed)
        log.info("resuming %s at stage %d, epoch %d, step %d", loop.ckpt_path, loop.state.stage_index,
                 loop.state.epoch, loop.state.step)
    st = loop.state
    total = sum(p.stage.length for p in plans)
    done = sum(p.stage.length for p in plans[: st.stage_index])
    if st.stage_index < len(plans):
        done += st.epoch if plans[st.stage_index].stage.unit == "epoch" else st.step
    units = {p.stage.unit for p in plans}
    loop.bar = bar = tqdm(total=total, initial=done, desc=method.name, disable=not cfg.progress, leave=True,
                          unit=units.pop() if len(units) == 1 else "unit", dynamic_ncols=True)
    first = st.stage_index
    for si in range(first, len(plans)):
        plan = plans[si]
        stage = plan.stage
        optimizers = method.configure_optimizers(stage)
        trains = resolve_trains(method, stage, optimizers)
        schedulers = method.configure_schedulers(stage, optimizers)
        if set(schedulers) - set(optimizers):
            raise ValueError(f"{method.name}: schedulers {sorted(set(schedulers) - set(optimizers))} name no optimizer")
        if resumed is not None and si == first and resumed["optimizers"]:
            if set(resumed["optimizers"]) != set(optimizers):
                raise RuntimeError(f"checkpoint optimizers {sorted(resumed['optimizers'])} do not match stage "
                                   f"'{stage.name}' optimizers {sorted(optimizers)}")
            for name, opt in optimizers.items():
                opt.load_state_dict(resumed["optimizers"][name])
            for name, sch in schedulers.items():
                sch.load_state_dict(resumed.get("schedulers", {})[name])
        if si != first:
            st.enter_stage(si)
        st.optimized[stage.name] = bool(optimizers)
        bar.set_description(f"{method.name}:{stage.name} (setup)")
        method.setup_training(train_set, stage, device)
        bar.set_description(f"{method.name}:{stage.name}")
        try:
            stopped = loop.run_stage(plan, trains, optimizers, schedulers)
        finally:
            method.teardown_training(stage)
        if plan.selection == "best_on_test" and stage.name in st.best:
            best = loop.best_memory.get(stage.name)
            if best is None:                                    # resumed after the best was found: read it back
                best = load_checkpoint_state_file(Path(run_dir) / f"best-{stage.name}.pt", device)
            method.load_checkpoint_state(best)
            st.best[stage.name]["early_stopped"] = stopped
        loop.save({"stage_index": si + 1, "epoch": 0, "batch": 0, "step": 0}, optimizers, schedulers, same_stage=False)
        resumed = None
    bar.close()
    method.eval()                                               # trained: every module in inference mode
    return {"history": st.history, "best": st.best, "config": asdict(cfg), "optimizer_steps": st.optimizer_steps(),
            "overhead_seconds": loop.overhead_seconds}


def load_checkpoint_state_file(path: Path, device) -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise RuntimeError(f"{path}: unreadable best-checkpoint ({type(e).__name__}: {e}). Delete the run folder "
                           "to retrain.") from e
