import json

import pytest
import torch

from rdlib.data import load_split
from rdlib.methods import create_method
from rdlib.methods.rd import RDMethod
from rdlib.runs import RunSpec, get_or_train, load_run
from rdlib.training import FitConfig, evaluate, fit


class Interrupted(Exception):
    pass


class CrashingRD(RDMethod):
    """RD that dies at a given optimisation step (simulates a killed session)."""

    def __init__(self, crash_at, **kw):
        super().__init__(**kw)
        self.crash_at, self.steps = crash_at, 0

    def training_step(self, batch, optimizers, stage):
        self.steps += 1
        if self.steps == self.crash_at:
            raise Interrupted
        return super().training_step(batch, optimizers, stage)


OPTS = dict(image_size=64, epochs=3, cache_features=True)


def _state(m):
    return {k: v.clone() for k, v in m.checkpoint_state().items()}


@pytest.mark.parametrize("cache", [True, False])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_benchmark, tmp_path, cache):
    train = load_split(tiny_benchmark, "brick", "train", 64)
    cfg = FitConfig(batch_size=4, seed=5, progress=False, device="cpu")       # 6 images → 2 steps per epoch
    torch.manual_seed(0)
    straight = RDMethod(**{**OPTS, "cache_features": cache})
    fit(straight, train, cfg=cfg)
    torch.manual_seed(0)                                                      # same initial weights
    crashing = CrashingRD(crash_at=4, **{**OPTS, "cache_features": cache})   # dies in the middle of epoch 2
    with pytest.raises(Interrupted):
        fit(crashing, train, cfg=cfg, run_dir=tmp_path)
    assert straight._cache is None and crashing._cache is None               # cached features freed, also on error
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == 1 and len(ck["history"]) == 1                       # epoch 1 was saved
    resumed = RDMethod(**{**OPTS, "cache_features": cache})
    out = fit(resumed, train, cfg=cfg, run_dir=tmp_path)
    assert [h["epoch"] for h in out["history"]] == [1, 2, 3]
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(tmp_path.glob(".*.tmp"))                                  # atomic writes leave no temp file


def test_checkpoint_seconds_thins_checkpoints_within_a_stage_and_resume_still_matches(tiny_benchmark, tmp_path,
                                                                                     monkeypatch):
    """With ``checkpoint_seconds`` longer than the run, no epoch checkpoint is written inside the stage (a crash
    restarts the stage), the run still ends with its final checkpoint, and the result equals a straight run's."""
    import rdlib.training as training

    train = load_split(tiny_benchmark, "brick", "train", 64)
    writes = []
    real_save = training.atomic_torch_save
    monkeypatch.setattr(training, "atomic_torch_save", lambda obj, path: (writes.append(obj.get("epoch")),
                                                                           real_save(obj, path)))
    cfg = FitConfig(batch_size=4, seed=5, progress=False, device="cpu", checkpoint_seconds=3600)
    torch.manual_seed(0)
    straight = RDMethod(**OPTS)
    fit(straight, train, cfg=cfg, run_dir=tmp_path / "straight")
    assert writes == [0]                                     # only the end-of-stage checkpoint (next stage, epoch 0)
    writes.clear()
    every = FitConfig(batch_size=4, seed=5, progress=False, device="cpu")
    torch.manual_seed(0)
    fit(RDMethod(**OPTS), train, cfg=every, run_dir=tmp_path / "every")
    assert writes == [1, 2, 0]                               # the default: after epochs 1 and 2, then the stage end
    torch.manual_seed(0)
    crashing = CrashingRD(crash_at=4, **OPTS)
    with pytest.raises(Interrupted):
        fit(crashing, train, cfg=cfg, run_dir=tmp_path / "crash")
    assert not (tmp_path / "crash" / "checkpoint.pt").exists()
    torch.manual_seed(0)
    resumed = RDMethod(**OPTS)
    fit(resumed, train, cfg=cfg, run_dir=tmp_path / "crash")
    a, b = _state(straight), _state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert FitConfig(checkpoint_seconds=60).key_dict() == FitConfig().key_dict()      # how, not what: same run key
    with pytest.raises(ValueError, match="checkpoint_seconds"):
        FitConfig(checkpoint_seconds=-1)


def test_checkpoint_excludes_the_frozen_teacher(tiny_benchmark):
    m = RDMethod(**OPTS)
    assert not any(k.startswith("model.teacher.") for k in m.checkpoint_state())


def test_best_on_test_selection(tiny_benchmark, tmp_path):
    train = load_split(tiny_benchmark, "brick", "train", 64)
    test = load_split(tiny_benchmark, "brick", "test", 64)
    m = RDMethod(**OPTS)
    out = fit(m, train, test, FitConfig(batch_size=4, eval_every=1, selection="best_on_test", progress=False, device="cpu"),
              run_dir=tmp_path)
    best = out["best"]["distill"]
    evaluated = [h["test_i_auroc"] for h in out["history"]]
    assert best["value"] == max(evaluated) and best["epoch"] == 1 + evaluated.index(max(evaluated))
    assert evaluate(m, test, device="cpu").metrics["i_auroc"] == pytest.approx(best["value"])


def test_training_time_leaves_out_the_in_loop_evaluations(tiny_benchmark, tmp_path, monkeypatch):
    """A run's train_seconds is the optimizer steps and their data: with every in-loop evaluation slowed by 0.3 s,
    the evaluations' time goes to overhead_seconds and train_seconds stays below it (AAND's cost table compared RD's
    steps, evaluated every few steps for its learning curve, with AAND's evaluated rarely)."""
    import time

    import rdlib.runs
    import rdlib.training

    real_evaluate, real_fit = rdlib.training.evaluate, rdlib.runs.fit
    calls, fit_wall = [], []

    def slow(*a, **k):                                         # the loop's evaluations (rdlib.training's name)
        calls.append(1)
        time.sleep(0.3)
        return real_evaluate(*a, **k)

    def timed_fit(*a, **k):
        t0 = time.perf_counter()
        out = real_fit(*a, **k)
        fit_wall.append(time.perf_counter() - t0)
        return out

    monkeypatch.setattr(rdlib.training, "evaluate", slow)
    monkeypatch.setattr(rdlib.runs, "fit", timed_fit)
    spec = RunSpec(str(tiny_benchmark), "coffee", "rd", dict(image_size=64, epochs=3), dict(batch_size=4, eval_every=1))
    run = get_or_train(spec, tmp_path)
    in_loop = sum(any(k.startswith("test_") for k in h) for h in run.history)    # the learning curve's points
    assert in_loop == len(calls) == 3                          # one per epoch; rdlib.runs's final one is not slowed
    overhead, train = run.info["overhead_seconds"], run.info["train_seconds"]
    assert 0.3 * in_loop <= overhead < fit_wall[0]
    assert train == pytest.approx(fit_wall[0] - overhead, abs=0.05)       # fit's time less its evaluations


def test_bad_fit_config():
    with pytest.raises(ValueError, match="selection"):
        FitConfig(selection="best")
    with pytest.raises(ValueError, match="eval_every"):
        FitConfig(eval_every=-1)
    with pytest.raises(ValueError, match="unknown key"):
        FitConfig(stage_selection={"distill": {"rule": "best_on_test"}})


def test_runs_are_reused_and_keyed_by_config(tiny_benchmark, tmp_path, monkeypatch):
    spec = RunSpec(str(tiny_benchmark), "coffee", "rd", dict(image_size=64, epochs=1), dict(batch_size=4))
    run = get_or_train(spec, tmp_path)
    for f in ("config.json", "checkpoint.pt", "metrics.json", "history.json", "predictions.npz"):
        assert (run.dir / f).is_file()
    assert set(run.metrics) == {"i_auroc", "i_ap", "p_auroc", "p_ap", "pro_rd", "aupro"}
    import rdlib.runs

    monkeypatch.setattr(rdlib.runs, "fit", lambda *a, **k: pytest.fail("a finished run must be reused"))
    again = get_or_train(spec, tmp_path)
    assert again.dir == run.dir and again.metrics == run.metrics
    other = RunSpec(str(tiny_benchmark), "coffee", "rd", dict(image_size=64, epochs=2), dict(batch_size=4))
    assert other.key() != spec.key()
    assert RunSpec(str(tiny_benchmark), "coffee", "rd", dict(image_size=64, epochs=1), dict(batch_size=4, seed=1)).key() != spec.key()
    explicit = RunSpec(str(tiny_benchmark), "coffee", "rd", dict(image_size=64, epochs=1, bottleneck="oce+mff", loss="flatten",
                                                                   betas=[0.5, 0.999]), dict(batch_size=4))
    assert explicit.key() == spec.key()                       # defaults spelled out: the same run
    with pytest.raises(ValueError, match="unknown rd option"):
        RunSpec(str(tiny_benchmark), "coffee", "rd", dict(epoch=3)).key()
    # the stored predictions reproduce the stored metrics, and the checkpoint reproduces the predictions
    p = run.predictions()
    method = run.load_method()
    res = evaluate(method, load_split(tiny_benchmark, "coffee", "test", 64), device="cpu")
    assert torch.allclose(torch.tensor(res.scores), torch.tensor(p.scores), atol=1e-5)
    assert json.loads((run.dir / "config.json").read_text())["key"] == spec.key()
    by_spec, by_dir = load_run(spec, tmp_path), load_run(run.dir)
    assert by_spec.dir == by_dir.dir == run.dir and by_dir.spec.key() == spec.key() and by_dir.metrics == run.metrics
    with pytest.raises(FileNotFoundError, match="no finished run"):
        load_run(other, tmp_path)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        load_run(tmp_path)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown method"):
        create_method("rd2")


class TwoStageToy(__import__("rdlib").methods.Method):
    """A method shaped like AAND / RD-RE: two stages, two optimizers in the first (like URD's teacher + student),
    a batch of (normal, synthetic anomaly, mask) built inside the method."""

    name = "toy"

    def __init__(self, epochs=(2, 2)):
        super().__init__()
        self.teacher = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.student = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.head = torch.nn.Conv2d(4, 1, 1)
        self.epochs = epochs
        self.calls = []
        self.hooks = []

    def setup_training(self, dataset, stage, device):
        self.hooks.append(("setup", stage.name))

    def teardown_training(self, stage):
        self.hooks.append(("teardown", stage.name))

    def stages(self):
        from rdlib.methods import Stage

        return [Stage("distill", epochs=self.epochs[0]), Stage("segment", epochs=self.epochs[1])]

    def configure_optimizers(self, stage):
        self.calls.append(stage.name)
        if stage.name == "distill":
            return {"teacher": torch.optim.Adam(self.teacher.parameters(), 1e-3),
                    "student": torch.optim.Adam(self.student.parameters(), 1e-2)}
        return {"head": torch.optim.SGD(self.head.parameters(), 0.1, momentum=0.9)}

    def train_batches(self, dataset, stage, batch_size, generator, device, num_workers=0):
        for batch in super().train_batches(dataset, stage, batch_size, generator, device, num_workers):
            x = batch["image"]
            mask = (torch.rand(x.shape[0], 1, *x.shape[2:], generator=generator) > 0.9).float()
            yield {"normal": x, "anomalous": x * (1 - mask) + mask, "mask": mask}

    def training_step(self, batch, optimizers, stage):
        if stage.name == "distill":
            loss_t = (self.teacher(batch["anomalous"]) - self.teacher(batch["normal"]).detach()).pow(2).mean()
            optimizers["teacher"].zero_grad()
            loss_t.backward()
            optimizers["teacher"].step()
            with torch.no_grad():
                t = self.teacher(batch["normal"])
            loss_s = (self.student(t) - t).pow(2).mean()
            optimizers["student"].zero_grad()
            loss_s.backward()
            optimizers["student"].step()
            return {"teacher": loss_t.item(), "student": loss_s.item()}
        with torch.no_grad():
            feat = self.student(self.teacher(batch["anomalous"]))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self.head(feat), batch["mask"])
        optimizers["head"].zero_grad()
        loss.backward()
        optimizers["head"].step()
        return {"seg": loss.item()}


def test_loop_serves_multi_stage_multi_optimizer_methods_and_resumes_across_stages(tiny_benchmark, tmp_path):
    train = load_split(tiny_benchmark, "brick", "train", 32)
    cfg = FitConfig(batch_size=3, seed=1, progress=False, device="cpu")
    torch.manual_seed(0)
    straight = TwoStageToy()
    out = fit(straight, train, cfg=cfg)
    assert [(h["stage"], h["epoch"]) for h in out["history"]] == [("distill", 1), ("distill", 2), ("segment", 1), ("segment", 2)]
    assert {"teacher", "student"} <= set(out["history"][0]) and "seg" in out["history"][-1]
    assert straight.calls == ["distill", "segment"]
    assert straight.hooks == [("setup", "distill"), ("teardown", "distill"), ("setup", "segment"), ("teardown", "segment")]
    # interrupt right after the first stage, resume in a fresh object: same weights as the uninterrupted run
    torch.manual_seed(0)
    first = TwoStageToy(epochs=(2, 2))
    orig = first.training_step

    def dying(batch, optimizers, stage):
        if stage.name == "segment":
            raise Interrupted
        return orig(batch, optimizers, stage)

    first.training_step = dying
    with pytest.raises(Interrupted):
        fit(first, train, cfg=cfg, run_dir=tmp_path)
    assert first.hooks[-1] == ("teardown", "segment")                    # also called when a stage dies
    resumed = TwoStageToy()
    fit(resumed, train, cfg=cfg, run_dir=tmp_path)
    assert resumed.calls == ["segment"]                                   # the finished stage is not redone
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
