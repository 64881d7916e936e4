from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_parses_and_lists_the_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert any(str(d).startswith("python") for d in env["dependencies"])
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(".[book,test]" in p or "-e ." in p for p in pip)


def test_profiles_exist_for_every_notebook():
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    for profile in ("ci", "book", "full", "paper"):
        data = yaml.safe_load((ROOT / "notebooks/params" / f"{profile}.yaml").read_text())
        assert set(names) <= set(data), f"{profile}.yaml lacks a section for {set(names) - set(data)}"


def test_profile_files_only_set_parameters_the_notebooks_have():
    """papermill only warns about an unknown parameter; a typo there would silently change nothing."""
    import jupytext

    for profile in ("ci", "book", "full", "paper"):
        data = yaml.safe_load((ROOT / "notebooks/params" / f"{profile}.yaml").read_text())
        for name, section in data.items():
            if name == "common":
                continue
            nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
            params = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
            known = {line.split("=")[0].strip() for line in params.splitlines() if "=" in line and not line.startswith("#")}
            unknown = set({**(data.get("common") or {}), **(section or {})}) - known
            assert not unknown, f"{profile}.yaml sets {sorted(unknown)} for {name}, which has no such parameter"


def test_paper_numbers_file_has_protocols():
    from rdlib.results import load_paper_numbers

    df = load_paper_numbers()
    rd = df[df.paper == "rd"]
    assert {"pro_variant", "checkpoint", "backbone", "image_size"} <= set(df.columns)
    assert rd[(rd.table_id == "rd_table1") & (rd.method == "rd") & (rd.category == "mean") & (rd.image_size == 256)].i_auroc.item() == 98.5


def test_numpy_lower_bound_allows_what_the_code_calls():
    """np.trapezoid (metrics) exists from NumPy 2.0 on: the declared lower bound must not be older."""
    import re

    text = (ROOT / "pyproject.toml").read_text()
    bound = re.search(r'"numpy>=(\d+)', text)
    uses_trapezoid = "np.trapezoid" in (ROOT / "rdlib" / "metrics.py").read_text()
    assert bound and (not uses_trapezoid or int(bound.group(1)) >= 2)


def test_the_kernel_does_not_import_the_anomaly_map_module():
    """The shared ε lives below both (rdlib.numerics): no import circle between anomaly_map and kernels."""
    import subprocess
    import sys

    code = ("import os, sys; os.environ['TRITON_INTERPRET'] = '1'; import rdlib.kernels.cosine_map; "
            "print('rdlib.anomaly_map' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_the_gpu_requirements_table_is_computed_and_the_readme_shows_that_file():
    """README and intro show benchmarks/results/gpu_requirements.md, written by benchmarks/gpu_requirements.py (a
    commit and machine named, every method at both GPU profiles); the README's copy may not drift from it."""
    import re

    import pandas as pd

    from rdlib.methods import list_methods, method_entry

    text = (ROOT / "benchmarks" / "results" / "gpu_requirements.md").read_text()
    assert re.search(r"at commit `[0-9a-f]{7,}` on x86_64", text) and "estimates from FLOPs" in text
    table = pd.read_csv(ROOT / "benchmarks" / "results" / "gpu_requirements.csv")
    ours = [m for m in list_methods() if method_entry(m).cls.__module__.startswith("rdlib.methods.")]  # not tests' toys
    assert sorted(zip(table.method, table.profile)) == sorted((m, p) for m in ours for p in ("full", "paper"))
    assert set(table["fits a 15 GB T4"]) <= {"yes", "no"}
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- gpu-requirements:start -->", "<!-- gpu-requirements:end -->"
    assert readme[readme.index(start) + len(start):readme.index(end)].strip() == text.strip(), \
        "README's GPU table differs from the results file: run python benchmarks/gpu_requirements.py --readme"
    assert "{include} ../benchmarks/results/gpu_requirements.md" in (ROOT / "book" / "intro.md").read_text()
