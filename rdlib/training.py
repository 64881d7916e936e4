"""One training loop for every method, plus evaluation.

The loop owns: device, seeds (one per stage/epoch, so a resumed run replays the same data order and random draws),
progress, atomic checkpoints every epoch with resume, periodic test-set evaluation and the checkpoint rule.

Checkpoint rule: ``selection="last"`` (default; RD reports its last epoch) or ``"best_on_test"`` — the epoch with
the best test-set score, which is how URD, AAND and RD++ report. That choice looks at the test set, so every table
that uses it says so.
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

from rdlib.methods.base import Method
from rdlib.metrics import evaluate_maps
from rdlib.utils import atomic_torch_save, default_device, seed_everything, stable_seed

log = logging.getLogger(__name__)
SELECTIONS = ("last", "best_on_test")


@dataclass
class FitConfig:
    batch_size: int = 16
    seed: int = 111
    eval_every: int = 0                 # epochs between test-set evaluations (0: only at the end)
    selection: str = "last"             # "last" | "best_on_test"
    selection_metric: str = "i_auroc"   # used by best_on_test (sum of these, comma separated)
    device: str | None = None
    progress: bool = True

    def __post_init__(self):
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection={self.selection!r}; choose from {SELECTIONS}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.selection == "best_on_test" and self.eval_every < 1:
            raise ValueError("selection='best_on_test' needs eval_every >= 1 (it picks among evaluated epochs)")


@dataclass
class EvalResult:
    """Per-image predictions of one test set and its metrics (in %)."""

    labels: np.ndarray                  # N (0/1)
    scores: np.ndarray                  # N
    maps: np.ndarray                    # N×S×S float16
    masks: np.ndarray                   # N×S×S bool
    defects: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds_per_image: float = math.nan

    def save(self, path: str | Path) -> None:
        import io

        from rdlib.utils import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, labels=self.labels, scores=self.scores, maps=self.maps, masks=np.packbits(self.masks, axis=-1),
                 mask_width=self.masks.shape[-1], defects=np.array(self.defects))
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path, metrics: dict | None = None) -> "EvalResult":
        z = np.load(path)
        masks = np.unpackbits(z["masks"], axis=-1, count=int(z["mask_width"])).astype(bool)
        return cls(z["labels"], z["scores"], z["maps"], masks, z["defects"].tolist(), metrics or {})


@torch.no_grad()
def evaluate(method: Method, dataset: Dataset, batch_size: int = 8, device: str | torch.device | None = None,
             pro: bool = True) -> EvalResult:
    """Predict every test image and compute all metrics."""
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
        maps.append(amap[:, 0].to(torch.float16).cpu().numpy())
        masks.append(batch["mask"][:, 0].numpy() > 0.5)
    res = EvalResult(np.concatenate(labels), np.concatenate(scores), np.concatenate(maps), np.concatenate(masks))
    table = getattr(dataset, "table", None)
    if table is not None:
        res.defects = table["defect"].tolist()
    res.metrics = evaluate_maps(res.labels, res.scores, res.masks, res.maps.astype(np.float32), pro=pro)
    res.seconds_per_image = elapsed / max(1, len(res.labels))
    return res


def _selection_value(metrics: dict, names: str) -> float:
    return sum(metrics[n.strip()] for n in names.split(","))


def fit(method: Method, train_set: Dataset, test_set: Dataset | None = None, cfg: FitConfig | None = None,
        run_dir: str | Path | None = None, resume: bool = True) -> dict:
    """Train ``method`` through all its stages. Returns ``{"history": [...], "best": {...} | None}``.

    With ``run_dir``, a checkpoint is written atomically after every epoch and training resumes from it.
    """
    cfg = cfg or FitConfig()
    device = torch.device(cfg.device) if cfg.device else default_device()
    method.to(device)
    seed_everything(cfg.seed)
    ckpt_path = Path(run_dir) / "checkpoint.pt" if run_dir else None
    best_path = Path(run_dir) / "best.pt" if run_dir else None
    state = {"stage_index": 0, "epoch": 0, "history": [], "best": None}
    opt_state = None
    if resume and ckpt_path is not None and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        method.load_checkpoint_state(ck["method"])
        state = {k: ck[k] for k in state}
        opt_state = ck["optimizers"]
        log.info("resuming %s at stage %d epoch %d", ckpt_path, state["stage_index"], state["epoch"])
    best_memory = None
    stages = method.stages()
    total = sum(s.epochs for s in stages)
    done = sum(s.epochs for s in stages[: state["stage_index"]]) + state["epoch"]
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, desc=f"{method.name}", disable=not cfg.progress, leave=False)
    for si in range(state["stage_index"], len(stages)):
        stage = stages[si]
        optimizers = method.configure_optimizers(stage)
        if opt_state and si == state["stage_index"]:
            if set(opt_state) != set(optimizers):
                raise RuntimeError(f"checkpoint optimizers {sorted(opt_state)} do not match stage '{stage.name}' "
                                   f"optimizers {sorted(optimizers)}")
            for name, opt in optimizers.items():
                opt.load_state_dict(opt_state[name])
        method.setup_training(train_set, stage, device)
        try:
            start = state["epoch"] if si == state["stage_index"] else 0
            for epoch in range(start, stage.epochs):
                epoch_seed = stable_seed(cfg.seed, stage.name, epoch)
                torch.manual_seed(epoch_seed)
                gen = torch.Generator().manual_seed(epoch_seed)
                sums, n = {}, 0
                for batch in method.train_batches(train_set, stage, cfg.batch_size, gen, device):
                    logs = method.training_step(batch, optimizers, stage)
                    for k, v in logs.items():
                        sums[k] = sums.get(k, 0.0) + v
                    n += 1
                record = {"stage": stage.name, "epoch": epoch + 1, **{k: v / max(n, 1) for k, v in sums.items()}}
                if test_set is not None and cfg.eval_every and (epoch + 1) % cfg.eval_every == 0:
                    res = evaluate(method, test_set, device=device, pro=False)
                    record.update({f"test_{k}": v for k, v in res.metrics.items()})
                    if cfg.selection == "best_on_test" and si == len(stages) - 1:
                        value = _selection_value(res.metrics, cfg.selection_metric)
                        if state["best"] is None or value > state["best"]["value"]:
                            state["best"] = {"stage": stage.name, "epoch": epoch + 1, "value": value}
                            best_memory = {k: v.detach().clone() for k, v in method.checkpoint_state().items()}
                            if best_path is not None:
                                atomic_torch_save(best_memory, best_path)
                state["history"].append(record)
                bar.update(1)
                bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k not in ("stage", "epoch")})
                if ckpt_path is not None:
                    nxt = (si, epoch + 1) if epoch + 1 < stage.epochs else (si + 1, 0)
                    # At a stage boundary the next stage builds fresh optimizers: store none.
                    opt_states = {k: o.state_dict() for k, o in optimizers.items()} if nxt[0] == si else {}
                    atomic_torch_save({"method": method.checkpoint_state(), "optimizers": opt_states,
                                       "stage_index": nxt[0], "epoch": nxt[1], "history": state["history"],
                                       "best": state["best"]}, ckpt_path)
        finally:
            method.teardown_training(stage)
        state["epoch"] = 0
        opt_state = None
    bar.close()
    if cfg.selection == "best_on_test" and state["best"] is not None:
        best = best_memory if best_memory is not None else torch.load(best_path, map_location=device)
        method.load_checkpoint_state(best)
    return {"history": state["history"], "best": state["best"], "config": asdict(cfg)}
