"""The official-code equivalence harness (benchmarks/official): its key maps, comparisons and imports, and the
committed results the chapters show."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.official.harness import (HarnessError, KeyMap, compare, compare_tensors, copy_weights,  # noqa: E402
                                         official_modules, share_gradients)
from rdlib.equivalence import REPOSITORIES, equivalence_table, load_equivalence  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "official"


def test_keymap_maps_renames_and_accounts_for_every_tensor():
    official = {"enc.layer1.0.downsample.0.weight": torch.zeros(2, 3), "enc.fc.weight": torch.zeros(5),
                "dec.layer1.0.upsample.0.weight": torch.zeros(4)}
    ours = {"body.layer1.0.shortcut.0.weight": torch.zeros(2, 3), "decoder.stage_a.0.shortcut.0.weight": torch.zeros(4)}
    km = KeyMap(rules=[(r"^enc\.", "body."), (r"^dec\.layer1\.", "decoder.stage_a.")],
                renames=[(r"\.(downsample|upsample)\.", ".shortcut.")], unused={r"^enc\.fc\.": "classifier"})
    mapping, account = km.resolve(official, ours)
    assert mapping == {"enc.layer1.0.downsample.0.weight": "body.layer1.0.shortcut.0.weight",
                       "dec.layer1.0.upsample.0.weight": "decoder.stage_a.0.shortcut.0.weight"}
    assert account["official_unused"] == {"classifier": 1} and account["mapped"] == 2


@pytest.mark.parametrize("official,ours,message", [
    ({"a.w": torch.zeros(1), "b.w": torch.zeros(1)}, {"x.w": torch.zeros(1)}, "no rule"),          # b.w unmapped
    ({"a.w": torch.zeros(1)}, {"x.w": torch.zeros(1), "x.v": torch.zeros(1)}, "not covered"),       # x.v uncovered
    ({"a.w": torch.zeros(2)}, {"x.w": torch.zeros(1)}, "shape"),
    ({"a.w": torch.zeros(1), "a2.w": torch.zeros(1)}, {"x.w": torch.zeros(1)}, "twice"),
])
def test_keymap_refuses_what_does_not_fit(official, ours, message):
    km = KeyMap(rules=[(r"^a2?\.", "x.")])
    with pytest.raises(HarnessError, match=message):
        km.resolve(official, ours)


def test_compare_hand_computed():
    r = compare("x", torch.tensor([1.0, 2.00001], dtype=torch.float64), torch.tensor([1.0, 2.0]))
    assert r["max_abs"] == pytest.approx(1e-5, rel=1e-3) and r["max_rel"] == pytest.approx(5e-6, rel=1e-3)
    assert r["verdict"] == "equal"
    assert compare("x", torch.tensor([1.0, 2.1]), torch.tensor([1.0, 2.0]))["verdict"] == "differs"
    assert compare("x", torch.zeros(2), torch.zeros(2))["max_rel"] == 0.0
    assert "shapes" in compare("x", torch.zeros(2), torch.zeros(3))["verdict"]


class _Official(nn.Module):                   # same network as _Ours under other names, plus a tensor never used
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        return self.norm(self.conv(x))


class _Ours(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4))

    def forward(self, x):
        return self.body(x)


def test_copy_weights_makes_two_differently_named_models_equal_and_compares_gradients_and_steps():
    torch.manual_seed(0)
    off, ours = _Official(), _Ours()
    km = KeyMap(rules=[(r"^conv\.", "body.0."), (r"^norm\.", "body.1.")], unused={r"^head\.": "never called"})
    account = copy_weights(ours, off, km)
    mapping = account.pop("mapping")
    assert account["parameters"] == {"official_all": 4 * 27 + 8 + 5, "official_used": 4 * 27 + 8, "rdlib": 4 * 27 + 8}
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(off(x), ours(x))
    off(x).square().mean().backward()
    (ours(x).square().mean() * 1.5).backward()                       # a loss that differs: gradients must differ
    assert compare_tensors("g", ours, off, mapping, "grad")["verdict"] == "differs"
    share_gradients(ours, off, mapping)
    assert compare_tensors("g", ours, off, mapping, "grad")["max_rel"] == 0
    o1 = torch.optim.Adam(off.parameters(), lr=0.1)
    o2 = torch.optim.Adam(ours.body[0].parameters(), lr=0.1)         # forgets the BN parameters: the step must differ
    o1.step(); o2.step()
    row = compare_tensors("p", ours, off, mapping, "param")
    assert row["verdict"] == "differs" and row["worst"].startswith("body.1.")


def test_official_modules_imports_from_the_checkout_and_cleans_up(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "resnet.py").write_text("VALUE = 7\nimport pkg.helper\n")
    (tmp_path / "pkg" / "helper.py").write_text("X = 1\n")
    with official_modules(tmp_path, ["resnet"]) as off:
        assert off.resnet.VALUE == 7 and "pkg.helper" in sys.modules
    assert "resnet" not in sys.modules and "pkg.helper" not in sys.modules and "pkg" not in sys.modules
    assert str(tmp_path.resolve()) not in sys.path
    with pytest.raises(HarnessError, match=re.escape("de_resnet.py")):
        with official_modules(tmp_path, ["de_resnet"]):
            pass


COMPONENTS_REQUIRED = ("initialisation", "loss", "gradients", "parameters after", "anomaly map", "image score")


@pytest.mark.parametrize("name", sorted(REPOSITORIES))
def test_committed_results_name_their_commits_and_find_every_component_equal(name):
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"{path.name} not committed yet")
    r = json.loads(path.read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", r["official"]["commit"]) and r["official"]["repository"] == REPOSITORIES[name]
    assert re.fullmatch(r"[0-9a-f]{40}", r["rdlib"]["commit"]) and not r["rdlib"]["rdlib_modified"]
    names = " | ".join(c["component"] for c in r["components"])
    for what in COMPONENTS_REQUIRED:
        assert what in names, f"{name}: no {what!r} row"
    for c in r["components"]:                      # relative tolerance, or absolute where the true value is 0
        assert c["verdict"] == "equal", (name, c)
        bound = c.get("tolerance", c.get("tolerance_std"))
        assert (c["max_rel"] <= bound) if bound is not None else (c["max_abs"] <= c["tolerance_abs"]), c
    assert r["weights"]["mapped"] == r["weights"]["rdlib_tensors"]
    assert r["weights"]["parameters"]["official_used"] == r["weights"]["parameters"]["rdlib"]
    sentence, table = equivalence_table(name)
    assert f"{len(r['components'])} of {len(r['components'])} components equal" in sentence
    assert list(table.index) == [c["component"] for c in r["components"]]
    assert re.search(r"(?<!`)__\w+__", sentence) is None          # a dunder is code, not Markdown bold


def test_equivalence_table_says_how_to_run_a_missing_check(tmp_path):
    assert load_equivalence("urd", tmp_path) is None
    sentence, table = equivalence_table("urd", tmp_path)
    assert table is None and "python -m benchmarks.official urd" in sentence
    with pytest.raises(ValueError, match="rd4ad"):
        load_equivalence("nope")
