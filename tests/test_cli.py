import json

import pytest

from rdlib.__main__ import main


def test_train_evaluate_predict(tiny_benchmark, tmp_path, capsys):
    common = ["--method", "rd", "--data", str(tiny_benchmark), "--category", "brick", "--profile", "ci", "-o", "epochs=1",
              "--runs-dir", str(tmp_path / "runs")]
    assert main(["train", *common, "--no-progress"]) == 0
    out = capsys.readouterr().out
    run_dir = out.split("run: ")[1].split("\n")[0]
    assert main(["evaluate", *common, "--out", str(tmp_path / "eval"), "--overlays", "3"]) == 0
    m = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert set(m["metrics"]) >= {"i_auroc", "p_auroc", "pro_rd", "aupro"} and len(m["overlays"]) == 3
    assert all((tmp_path / "eval/overlays").joinpath(p.rsplit("/", 1)[1]).is_file() for p in m["overlays"])
    assert main(["evaluate", "--run", run_dir, "--out", str(tmp_path / "eval2"), "--overlays", "1"]) == 0
    assert json.loads((tmp_path / "eval2/metrics.json").read_text())["metrics"] == m["metrics"]
    img = str(next((tiny_benchmark / "brick/test/scratch").iterdir()))
    assert main(["predict", "--run", run_dir, "--images", img, "--out", str(tmp_path / "pred")]) == 0
    scores = json.loads((tmp_path / "pred/scores.json").read_text())
    assert list(scores) == [img] and (tmp_path / "pred").joinpath(img.rsplit("/", 1)[1]).is_file()
    # predict scores an image as evaluation scored it in the test set (same preprocessing, same model)
    from rdlib.runs import build_datasets, load_run

    run = load_run(run_dir)
    pred = run.predictions()
    table = build_datasets(run.spec)[1].table
    at = [str(p) for p in table.image_path].index(img)
    assert scores[img] == pytest.approx(float(pred.scores[at]), rel=1e-4, abs=1e-5)
    capsys.readouterr()
    assert main(["methods"]) == 0
    assert "rd: RD (Deng & Li" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/no/such/dir", "--category", "x"], "no such folder"),
    (["train", "--data", "{root}", "--category", "nope"], "not found under"),
    (["train", "--data", "{root}", "--category", "brick", "--profile", "huge"], "no profile 'huge'"),
    (["train", "--data", "{root}", "--category", "brick", "-o", "epochs=0"], "the budget must be >= 1"),
    (["train", "--data", "{root}", "--category", "brick", "-o", "epoch=3"], "unknown rd option(s) ['epoch']"),
    (["train", "--data", "{root}", "--category", "brick", "-o", "loss=l2"], "loss='l2'; choose from"),
    (["train", "--data", "{root}", "--category", "brick", "-o", "noequals"], "expected KEY=VALUE"),
    (["evaluate", "--data", "{root}", "--category", "brick", "--profile", "ci", "-o", "epochs=7", "--runs-dir", "{tmp}"],
     "no finished run"),
    (["evaluate"], "needs --run DIR"),
    (["predict", "--run", "{tmp}", "--images", "a.png"], "not a run folder"),
])
def test_bad_arguments_give_clear_errors(tiny_benchmark, tmp_path, capsys, args, message):
    args = [a.replace("{root}", str(tiny_benchmark)).replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) in (1, 2)
    assert message in capsys.readouterr().err


def test_cli_profile_run_is_the_books_run_and_explicit_zero_is_kept(tiny_benchmark):
    """``train --profile book`` builds the very spec the chapter builds from the same profile (same key), and an
    explicit 0 is an option value, not 'unset'."""
    from rdlib.__main__ import _spec, build_parser
    from rdlib.runs import RunSpec

    args = build_parser().parse_args(["train", "--data", str(tiny_benchmark), "--category", "brick", "--profile", "book"])
    assert _spec(args).key() == RunSpec.from_profile("rd", "book", str(tiny_benchmark), "brick").key()
    args = build_parser().parse_args(["train", "--data", str(tiny_benchmark), "--category", "brick", "-o", "lr=0"])
    assert _spec(args).options["lr"] == 0
