"""Per-task regression tests: the real drivers end to end on the generated sample with the tiny encoder, in the
order a user runs them (run_task2.sh, run_task3.sh, run_task1.sh) in one output folder. The later drivers train
no fold the earlier ones finished; each submission validates; each blended CV stays above a floor recorded from a
real run (seed 42, tiny encoder, 300-query sample; recorded values in FLOORS' comments) and well above the trivial
baseline; each task's OOF explorer notebook runs top to bottom; a rerun skips every finished stage."""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from esci.metrics import ndcg
from esci.submission import validate

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = "model_dir=tiny lr=5e-4 epochs=8 unit_match=True use_ids=False"
ORDER = (2, 3, 1)
# blend CV of the recorded run, less a margin for platform float noise
FLOORS = {1: 0.94,   # recorded 0.9565 (t1_a_clean 0.9506, t1_b 0.9422, t1_reg 0.9491), add_large_rows
          2: 0.64,   # recorded 0.6566 (t2_a 0.6539, t2_b 0.6562); majority class 0.5933
          3: 0.78}   # recorded 0.7908 (t3_a 0.7904, t3_b 0.7908); majority class 0.7657


def run_driver(task, out):
    env = {**os.environ, "OUTPUT_DIR": str(out), "DATA_DIR": "sample", "PYTHON": sys.executable,
           "OVERRIDES": OVERRIDES}
    return subprocess.run(["bash", str(ROOT / f"run_task{task}.sh")], env=env, capture_output=True, text=True)


def trained_folds(stderr: str) -> list[str]:
    """'<experiment> fold <k>' of every fold a driver's log shows being trained (its 'done' lines)."""
    return sorted(line.split("train: ")[1].split(" done")[0] for line in stderr.splitlines() if " done: " in line)


@pytest.fixture(scope="module")
def drivers(tmp_path_factory):
    out = tmp_path_factory.mktemp("drivers")
    runs = {task: run_driver(task, out) for task in ORDER}
    for task, res in runs.items():
        assert res.returncode == 0, (task, res.stdout[-3000:] + res.stderr[-3000:])
    return out, runs


def run_notebook(path, output_dir, monkeypatch):
    """Execute every cell (an error in any cell raises); the kernel inherits OUTPUT_DIR."""
    nb = nbformat.read(path, as_version=4)
    monkeypatch.setenv("OUTPUT_DIR", str(output_dir))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 4, f"{path.name}: {images} plots"


def trivial(task, train):
    """Task 1: expected nDCG of an uninformed ranking (all scores tied); tasks 2-3: the majority class."""
    if task == 1:
        return ndcg(train.assign(score=0.0))
    truth = train.esci_label if task == 2 else train.esci_label.eq("S")
    return float(truth.value_counts(normalize=True).iloc[0])


@pytest.mark.slow
def test_later_drivers_train_only_what_the_earlier_ones_did_not(drivers):
    _, runs = drivers
    trained = {task: trained_folds(res.stderr) for task, res in runs.items()}
    shared = [f"t2_{v} fold {k}" for v in "ab" for k in range(3)]
    assert trained[2] == sorted(shared)
    assert trained[3] == [f"t3_a fold {k}" for k in range(3)]
    assert trained[1] == [f"t1_reg fold {k}" for k in range(3)]
    for task in (3, 1):
        assert runs[task].stderr.count("complete; skipping") >= len(shared) + 1  # + the prepared tables


@pytest.mark.slow
@pytest.mark.parametrize("task", ORDER)
def test_driver_end_to_end(drivers, task, monkeypatch):
    out, runs = drivers
    res = runs[task]
    sub = out / "sample/tiny/submissions" / f"task{task}.csv"
    assert f"submission: {sub}" in res.stdout and "cv.csv" in res.stdout
    examples = pd.read_parquet(out / "sample/data/examples.parquet")
    version = "small_version" if task == 1 else "large_version"
    rows = examples[examples[version].eq(1)]
    train, test = rows[rows.split.eq("train")], rows[rows.split.eq("test")]
    assert validate(task, sub, test)["rows"] == len(test)
    cv = pd.read_csv(out / "sample/tiny" / f"blend_t{task}" / "cv.csv").set_index("member")
    metric = cv.iloc[:, 0]
    blend = metric["blend"]
    assert blend >= metric.drop("blend").max() - 1e-9
    assert blend > trivial(task, train) + 0.02, (blend, trivial(task, train))
    assert blend >= FLOORS[task], cv
    run_notebook(ROOT / "notebooks" / f"task{task}_oof_explorer.ipynb", out, monkeypatch)
    again = run_driver(task, out)
    assert again.returncode == 0 and " epoch " not in again.stderr and not trained_folds(again.stderr)
    assert again.stderr.count("complete; skipping") >= 7
