"""The framework contract with a toy method registered from outside rdlib: a two-stage method with a trainable
teacher and a student (two optimizers, step budget, LR scheduler), then a head trained on synthetic masks. It runs
through the loop, the run store and the CLI exactly as a paper's package would."""
import json
import os

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from rdlib.__main__ import main
from rdlib.anomaly_map import AnomalyMap
from rdlib.data import SeededItems, load_split
from rdlib.methods import Method, OptionError, Stage, create_method, list_methods, register_method
from rdlib.runs import RunError, RunSpec, get_or_train, load_run
from rdlib.training import FitConfig, evaluate, fit, load_checkpoint


class Interrupted(Exception):
    pass


class ToyModel(nn.Module):
    def __init__(self, image_size):
        super().__init__()
        self.teacher = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))   # trainable, with BatchNorm
        self.student = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.head = nn.Conv2d(4, 1, 1)
        self.anomaly_map = AnomalyMap(image_size, sigma=0.0, score="topk", top_k=5)

    def forward(self, x):
        t = self.teacher(x)
        if self.training:
            return t, self.student(t.detach())
        return self.anomaly_map.from_map(torch.sigmoid(self.head(self.student(t))))


TOY_PROFILES = {"ci": {"options": {"image_size": 32, "steps": (5, 4)}, "fit": {"batch_size": 3, "seed": 1}}}


@register_method("toy", profiles=TOY_PROFILES)
class ToyTwoStage(Method):
    """Toy: teacher + student by steps with a MultiStepLR, then a head on synthetic masks with a StepLR."""

    def __init__(self, image_size: int = 32, steps: tuple = (5, 4), lr: float = 0.01, crash_at: int = 0,
                 head_eval_every: int = 2):
        super().__init__()
        self.model = ToyModel(image_size)
        self.steps, self.lr, self.crash_at, self.head_eval_every = tuple(steps), lr, crash_at, head_eval_every
        self.modes, self.n_steps = [], 0

    def stages(self):
        return [Stage("distill", steps=self.steps[0], trains=("model.teacher", "model.student")),
                Stage("segment", steps=self.steps[1], trains=("model.head",), eval_every=self.head_eval_every)]

    def configure_optimizers(self, stage):
        if stage.name == "distill":
            return {"teacher": torch.optim.Adam(self.model.teacher.parameters(), self.lr),
                    "student": torch.optim.Adam(self.model.student.parameters(), self.lr)}
        return {"head": torch.optim.SGD(self.model.head.parameters(), 0.1, momentum=0.9)}

    def configure_schedulers(self, stage, optimizers):
        if stage.name == "distill":
            return {"student": torch.optim.lr_scheduler.MultiStepLR(optimizers["student"], [2, 4], 0.2)}
        return {"head": torch.optim.lr_scheduler.StepLR(optimizers["head"], 1, 0.5)}

    def extra_metric_names(self, stage):
        return ("head_bias",) if stage.name == "segment" else ()

    def extra_metrics(self, stage, dataset, device):
        return {"head_bias": float(self.model.head.bias.item())} if stage.name == "segment" else {}

    def training_step(self, batch, optimizers, stage):
        self.n_steps += 1
        if self.crash_at and self.n_steps == self.crash_at:
            raise Interrupted
        self.modes.append((stage.name, {n: m.training for n, m in self.named_modules()}))
        x = batch["image"]
        mask = (torch.rand(x.shape[0], 1, *x.shape[2:]) > 0.8).float()      # global RNG: seeded per step by the loop
        synthetic = x * (1 - mask) + mask * torch.rand_like(x)
        if stage.name == "distill":
            t_normal = self.model.teacher(x)
            loss_t = (self.model.teacher(synthetic) - t_normal.detach()).pow(2).mean() + 0.1 * t_normal.pow(2).mean()
            optimizers["teacher"].zero_grad()
            loss_t.backward()
            optimizers["teacher"].step()
            t, s = self.model(x)
            loss_s = (s - t.detach()).pow(2).mean()
            optimizers["student"].zero_grad()
            loss_s.backward()
            optimizers["student"].step()
            return {"teacher": loss_t.item(), "student": loss_s.item()}
        with torch.no_grad():
            feat = self.model.student(self.model.teacher(synthetic))
        loss = nn.functional.binary_cross_entropy_with_logits(self.model.head(feat), mask)
        optimizers["head"].zero_grad()
        loss.backward()
        optimizers["head"].step()
        return {"seg": loss.item()}


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


CFG = dict(batch_size=3, seed=1, progress=False, device="cpu", checkpoint_every=2, log_every=1)


def test_the_toy_is_registered_beside_the_papers():
    assert {"rd", "toy"} <= set(list_methods())
    with pytest.raises(OptionError, match="valid options: .*crash_at"):
        create_method("toy", epochs=3)


def test_modes_per_stage_are_exactly_the_declared_trainable_modules(tiny_benchmark):
    train = load_split(tiny_benchmark, "brick", "train", 32)
    m = ToyTwoStage(steps=(3, 2))
    fit(m, train, cfg=FitConfig(**CFG))
    for stage, modes in m.modes:
        trained = ("model.teacher", "model.student") if stage == "distill" else ("model.head",)
        for name, training in modes.items():
            inside = any(name == t or name.startswith(t + ".") for t in trained)
            parent = any(t.startswith(name + ".") for t in trained) or name == ""
            assert training == (inside or parent), (stage, name, training)
    assert not m.training and not m.model.teacher[1].training          # after fit: a plain module, eval at predict


def test_step_budgets_schedulers_and_bit_identical_resume_mid_stage(tiny_benchmark, tmp_path):
    train = load_split(tiny_benchmark, "brick", "train", 32)         # 6 images, batch 3: 2 steps per epoch
    test = load_split(tiny_benchmark, "brick", "test", 32)
    torch.manual_seed(0)
    straight = ToyTwoStage()
    out = fit(straight, train, test, FitConfig(**CFG))
    distill = [h for h in out["history"] if h["stage"] == "distill"]
    assert [h["step"] for h in distill] == [1, 2, 3, 4, 5] and distill[-1]["epoch"] == 3   # 5 steps = 2.5 passes
    segment = [h for h in out["history"] if h["stage"] == "segment"]
    assert [h["step"] for h in segment] == [1, 2, 3, 4]
    assert [("test_i_auroc" in h) for h in segment] == [False, True, False, True]          # eval_every=2 steps
    # resume in the middle of the first stage (step 4, inside the second pass), with schedulers in the checkpoint
    torch.manual_seed(0)
    crashing = ToyTwoStage(crash_at=4)
    with pytest.raises(Interrupted):
        fit(crashing, train, test, FitConfig(**CFG), run_dir=tmp_path)
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert (ck["stage_index"], ck["step"], ck["epoch"], ck["batch"]) == (0, 2, 0, 2)     # after both batches of pass 1
    assert ck["schedulers"]["student"]["last_epoch"] == 2
    resumed = ToyTwoStage()
    out2 = fit(resumed, train, test, FitConfig(**CFG), run_dir=tmp_path)
    a, b = _state(straight), _state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert [h["step"] for h in out2["history"]] == [h["step"] for h in out["history"]]
    # and once more, dying inside the second stage, after a mid-stage checkpoint
    torch.manual_seed(0)
    crashing = ToyTwoStage(crash_at=5 + 3)
    with pytest.raises(Interrupted):
        fit(crashing, train, test, FitConfig(**CFG), run_dir=tmp_path / "second")
    resumed = ToyTwoStage()
    fit(resumed, train, test, FitConfig(**CFG), run_dir=tmp_path / "second")
    b = _state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_selection_rules_are_validated_up_front_and_per_stage(tiny_benchmark, tmp_path):
    train = load_split(tiny_benchmark, "brick", "train", 32)
    test = load_split(tiny_benchmark, "brick", "test", 32)
    with pytest.raises(ValueError, match=r"unknown term\(s\) \['p_aurocc'\].*valid: \['i_auroc'"):
        fit(ToyTwoStage(), train, test, FitConfig(**CFG, selection="best_on_test", selection_metric="p_aurocc"))
    with pytest.raises(ValueError, match="unknown stage"):
        fit(ToyTwoStage(), train, test, FitConfig(**CFG, stage_selection={"nope": {"selection": "best_on_test"}}))
    with pytest.raises(ValueError, match="needs a test set"):
        fit(ToyTwoStage(), train, None, FitConfig(**CFG, selection="best_on_test"))
    with pytest.raises(ValueError, match="head_bias"):                  # a hook metric only exists in its stage
        fit(ToyTwoStage(), train, test, FitConfig(**CFG, stage_selection={"distill": {"selection": "best_on_test",
                                                                                      "metric": "head_bias"}}))
    # a sum of metrics in the first stage, the method's own metric in the second
    m = ToyTwoStage(head_eval_every=1)
    out = fit(m, train, test, FitConfig(**CFG, eval_every=None, stage_selection={
        "distill": {"selection": "best_on_test", "metric": "p_auroc+i_auroc"},
        "segment": {"selection": "best_on_test", "metric": "head_bias", "early_stop": 1}}), run_dir=tmp_path)
    hist = out["history"]
    d_vals = [h["test_p_auroc"] + h["test_i_auroc"] for h in hist if h["stage"] == "distill"]
    assert out["best"]["distill"]["value"] == pytest.approx(max(d_vals))
    seg = [h for h in hist if h["stage"] == "segment"]
    best = out["best"]["segment"]
    assert best["value"] == pytest.approx(max(h["test_head_bias"] for h in seg))
    if best["early_stopped"]:
        assert len(seg) < 4                                                # stopped after one stale evaluation
    assert m.model.head.bias.item() == pytest.approx(best["value"])          # best weights loaded at the end


def test_optimizer_outside_the_stage_modules_is_refused(tiny_benchmark):
    class Leaky(ToyTwoStage):
        def configure_optimizers(self, stage):
            opts = super().configure_optimizers(stage)
            if stage.name == "segment":
                opts["student"] = torch.optim.SGD(self.model.student.parameters(), 0.1)
            return opts

    with pytest.raises(ValueError, match=r"outside the stage's trainable modules \['model.head'\]"):
        fit(Leaky(), load_split(tiny_benchmark, "brick", "train", 32), cfg=FitConfig(**CFG))


class NoisyItems(SeededItems, Dataset):
    """Per-item random numbers from (epoch seed, index), like anomaly synthesis."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        g = self.item_generator(i)
        return {"image": torch.rand(3, 8, 8, generator=g), "index": i}


class Recorder(Method):
    def __init__(self):
        super().__init__()
        self.model = nn.Conv2d(3, 1, 1)
        self.seen = []

    def stages(self):
        return [Stage("only", epochs=2, trains=("model",))]

    def configure_optimizers(self, stage):
        return {"sgd": torch.optim.SGD(self.model.parameters(), 0.0)}

    def training_step(self, batch, optimizers, stage):
        self.seen.append((batch["index"].tolist(), batch["image"].sum().item()))
        return {}


def test_worker_processes_see_the_same_batches(tmp_path):
    runs = []
    for workers in (0, 2):
        m = Recorder()
        fit(m, NoisyItems(), cfg=FitConfig(batch_size=3, seed=4, progress=False, device="cpu", num_workers=workers))
        runs.append(m.seen)
    assert runs[0] == runs[1] and len(runs[0]) == 6
    assert runs[0][0][0] != runs[0][3][0] or runs[0][0][1] != runs[0][3][1]     # epochs differ


def test_scoring_options_and_their_context_manager():
    amap = AnomalyMap(4, sigma=0.0, score="topk", top_k=3)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    m, score = amap.from_map(x)
    assert torch.allclose(m, x) and score.item() == pytest.approx((15 + 14 + 13) / 3)     # hand-computed
    with pytest.raises(ValueError, match="choose from"):
        amap.configure(score="median")
    method = create_method("rd", image_size=32)
    with method.scoring(levels=(1, 2), sigma=0.0):
        assert method.model.anomaly_map.levels == (1, 2) and method.model.anomaly_map.sigma == 0.0
    assert method.model.anomaly_map.levels is None and method.model.anomaly_map.sigma == 4.0


def test_toy_method_through_runs_and_the_cli(tiny_benchmark, tmp_path, capsys):
    runs_dir = str(tmp_path / "runs")
    args = ["--method", "toy", "--data", str(tiny_benchmark), "--category", "brick", "--profile", "ci",
            "--runs-dir", runs_dir]
    assert main(["train", *args, "--no-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    run_dir = out.split("run: ")[1].split("\n")[0]
    printed = json.loads(out.split("\n", 1)[1])
    assert list(printed) == ["i_auroc", "i_ap", "p_auroc", "p_ap", "pro_rd", "aupro"]
    spec = RunSpec.from_profile("toy", "ci", str(tiny_benchmark), "brick")
    assert str(spec.dir(runs_dir)) == run_dir                                # the CLI run is the profile's run
    assert main(["evaluate", "--run", run_dir, "--out", str(tmp_path / "ev"), "--overlays", "2"]) == 0
    ev = capsys.readouterr().out
    assert list(json.loads(ev.split("\nwrote")[0])) == list(printed)         # same order for train and evaluate
    for f in ("config.json", "metrics.json", "checkpoint.pt"):
        assert oct(os.stat(os.path.join(run_dir, f)).st_mode & 0o777) == oct(0o666 & ~_umask())
    # unknown method option: error lists the method's options; -v shows the traceback
    assert main(["train", *args, "-o", "epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown toy option(s) ['epochs']" in err and "steps=(5, 4)" in err
    with pytest.raises(OptionError):
        main(["-v", "train", *args, "-o", "epochs=3"])
    assert main(["train", *args, "--profile", "paper"]) == 2
    assert "no profile 'paper'" in capsys.readouterr().err
    assert main(["train", "--method", "nope", "--data", str(tiny_benchmark), "--category", "brick"]) == 2
    assert "available: [" in capsys.readouterr().err


class RunsCode:
    """Unpickling this calls a function: exactly what weights_only=True must refuse."""

    def __reduce__(self):
        return (print, ("a checkpoint ran code",))


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_metrics_are_computed_on_float32_maps_and_nan_is_json_null(tiny_benchmark, tmp_path):
    from rdlib.metrics import evaluate_maps
    from rdlib.utils import atomic_write_json

    method = create_method("rd", image_size=32, weights="random")
    test = load_split(tiny_benchmark, "coffee", "test", 32)
    res = evaluate(method, test, device="cpu")
    assert len(test) <= 8                                                   # one batch, as evaluate() runs it
    maps32 = method.predict(torch.stack([test[i]["image"] for i in range(len(test))]))[0][:, 0].numpy()
    assert res.metrics == evaluate_maps(res.labels, res.scores, res.masks, maps32)
    assert res.maps.dtype.name == "float16"
    atomic_write_json(tmp_path / "m.json", {"pro": float("nan"), "x": [1.0, float("inf")]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"pro": None, "x": [1.0, None]}


def test_pro_names_the_images_it_leaves_out(caplog):
    import numpy as np

    from rdlib.metrics import evaluate_maps

    rng = np.random.default_rng(0)
    masks = np.zeros((3, 16, 16), bool)
    masks[1, 4:8, 4:8] = True
    maps = rng.random((3, 16, 16)).astype(np.float32)
    notes = []
    m = evaluate_maps([0, 1, 1], maps.max((1, 2)), masks, maps, notes=notes, names=["a.png", "b.png", "c.png"])
    assert np.isfinite(m["pro_rd"]) and len(notes) == 1 and "c.png (empty mask)" in notes[0]


def test_damaged_runs_give_clear_errors_or_a_clean_retrain(tiny_benchmark, tmp_path, caplog):
    spec = RunSpec.from_profile("toy", "ci", str(tiny_benchmark), "coffee")
    run = get_or_train(spec, tmp_path, progress=False)
    ck = run.dir / "checkpoint.pt"
    # a checkpoint that would run code when unpickled is refused (weights_only)
    torch.save({"evil": RunsCode()}, ck)
    with pytest.raises(RuntimeError, match="unreadable checkpoint"):
        load_run(run.dir).load_method()
    # hand-edited: a tensor removed from the weights
    torch.save({"method": {}, "optimizers": {}, "stage_index": 2, "epoch": 0, "history": [], "best": {}}, ck)
    with pytest.raises(RunError, match="checkpoint does not match"):
        load_run(run.dir).load_method()
    # truncated
    ck.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RuntimeError, match="checkpoint.pt: unreadable checkpoint"):
        load_run(run.dir).load_method()
    # metrics but no checkpoint: retrained cleanly
    ck.unlink()
    again = get_or_train(spec, tmp_path, progress=False)
    assert (again.dir / "checkpoint.pt").is_file() and again.metrics == run.metrics
    # key collision: same folder, another configuration on disk
    cfg = json.loads((run.dir / "config.json").read_text())
    cfg["spec"]["options"]["lr"] = 0.5
    (run.dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match="key collision"):
        get_or_train(spec, tmp_path, progress=False)


def test_a_failed_category_is_a_visible_row(tiny_benchmark, tmp_path):
    from rdlib.experiments import results_table, train_categories

    cr = train_categories("toy", "ci", str(tiny_benchmark), ["brick", "no_such_category"], runs_dir=tmp_path)
    table = results_table(cr)
    assert list(table.index) == ["brick", "no_such_category", "mean"]
    assert table.loc["no_such_category", "status"].startswith("FAILED: DataError")
    assert table.loc["mean", "status"] == "mean of 1 of 2 categories"
    assert table.loc["mean", "i_auroc"] == pytest.approx(table.loc["brick", "i_auroc"])


def test_stop_above_ends_a_stage_once_its_metric_passes_the_threshold(tiny_benchmark):
    """AAND's rule (stop once the test I-AUROC passes 99.9): a threshold below every value stops at the first
    evaluation, one above every value never stops; without best-on-test the rule is refused."""
    train = load_split(tiny_benchmark, "brick", "train", 32)
    test = load_split(tiny_benchmark, "brick", "test", 32)
    for threshold, expected in ((-1e9, 1), (1e9, 4)):
        out = fit(ToyTwoStage(head_eval_every=1), train, test, FitConfig(**CFG, stage_selection={
            "segment": {"selection": "best_on_test", "metric": "head_bias", "stop_above": threshold}}))
        seg = [h for h in out["history"] if h["stage"] == "segment" and "test_head_bias" in h]
        assert len(seg) == expected and out["best"]["segment"]["early_stopped"] == (expected == 1)
    with pytest.raises(ValueError, match="stop_above need selection='best_on_test'"):
        fit(ToyTwoStage(), train, test, FitConfig(**CFG, stage_selection={"segment": {"stop_above": 0.5}}))


def test_side_by_side_and_training_cost_per_optimizer_step_by_hand():
    import numpy as np
    import pandas as pd

    from rdlib.experiments import CategoryRuns, side_by_side, train_ms_per_step
    from rdlib.runs import Run

    a = pd.DataFrame({"i_auroc": [80.0, 60.0, 70.0], "p_auroc": [90.0, 70.0, 80.0]}, index=["brick", "coffee", "mean"])
    b = pd.DataFrame({"i_auroc": [50.0, 50.0], "p_auroc": [55.0, 55.0]}, index=["brick", "mean"])
    t = side_by_side({"RD": a, "kNN": b})
    assert list(t.columns) == ["RD I-AUROC", "kNN I-AUROC", "RD P-AUROC", "kNN P-AUROC"]
    assert t.loc["coffee", "RD P-AUROC"] == 70.0 and np.isnan(t.loc["coffee", "kNN I-AUROC"])
    # two stages of 10 and 30 steps in 8 s → 200 ms per step; a single-stage run of 40 steps in 2 s → 50 ms
    two = Run(None, None, {}, [{"stage": "a", "step": 5}, {"stage": "a", "step": 10}, {"stage": "b", "step": 30}],
              {"train_seconds": 8.0, "optimizer_steps": 40})
    one = Run(None, None, {}, [{"stage": "main", "step": 40}], {"train_seconds": 2.0, "optimizer_steps": 40})
    assert two.steps == 40 and one.steps == 40
    assert train_ms_per_step(CategoryRuns(runs={"x": two, "y": one})) == pytest.approx(125.0)


def test_scoring_source_is_refused_by_a_method_with_one_map_and_restored_after_a_bad_option():
    rd = create_method("rd", image_size=64, weights="random")
    with pytest.raises(ValueError, match="one map only"):
        with rd.scoring(source="gate"):
            pass
    rdre = create_method("rdre", image_size=64, weights="random", teacher="resnet18")
    with pytest.raises(Exception):
        with rdre.scoring(source="distill", no_such_option=1):
            pass
    assert rdre.model.map_source == "seg"                  # a failed call leaves the model as it was


def test_novelty_detection_scores_other_categories_with_each_model(tiny_benchmark):
    """RD Table 4's protocol on the chapter's runs: category c's model against c's normal test images (inliers) and
    the other categories' normal test images (novelties), scored by the sum of the map. A stand-in model whose map is
    the image's distance from its own category's mean brightness separates them perfectly; a constant one is at 50."""
    import torch

    from rdlib.experiments import CategoryRuns, novelty_detection
    from rdlib.runs import Run, RunSpec, build_datasets

    class Model:
        def __init__(self, centre):
            self.centre = centre

        def predict(self, x):
            d = (x.mean((1, 2, 3)) - self.centre).abs() if self.centre is not None else torch.zeros(len(x))
            return d.view(-1, 1, 1, 1).expand(-1, 1, 4, 4), d

    class StubRun(Run):
        def load_method(self, device=None, **kw):
            return Model(self.info["centre"])

    specs = {c: RunSpec(str(tiny_benchmark), c, "rd", {"image_size": 32}) for c in ("brick", "coffee")}
    centre = {c: float(torch.stack([build_datasets(s)[1][i]["image"] for i in range(3)]).mean()) for c, s in specs.items()}
    runs = {c: StubRun(s, None, {}, [], {"centre": centre[c]}) for c, s in specs.items()}
    t = novelty_detection(CategoryRuns(runs=runs))
    assert list(t["inliers"]) == [3, 3, 6] and list(t["novelties"]) == [3, 3, 6]       # 3 normal test images each
    assert (t["AUROC, sum of the map (%)"] > 99).all()
    flat = {c: StubRun(s, None, {}, [], {"centre": None}) for c, s in specs.items()}
    assert (novelty_detection(CategoryRuns(runs=flat))["AUROC, max of the map (%)"] == 50).all()
    from rdlib.experiments import novelty_sentence

    alone = novelty_detection(CategoryRuns(runs={"brick": runs["brick"]}))   # no other category: no novelties
    assert alone.empty and "at least two categories" in novelty_sentence(alone)
