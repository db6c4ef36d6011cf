"""Read a finished experiment's predictions: all folds' OOF rows and the fold-averaged test rows.

In: output/<profile>/<name>/fold*/ {oof,test}.parquet and the task's prepared train/test tables.
Out: (oof, test) frames keyed by example_id. Every training example must have exactly one OOF prediction and
every test example one prediction per fold; anything else raises, naming the experiment and the fix.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .tasks import task_metric


def load_member(run_dir: Path, train: pd.DataFrame, test: pd.DataFrame, n_folds: int):
    folds = [run_dir / f"fold{k}" for k in range(n_folds)]
    unfinished = [str(f) for f in folds if not (f / "metrics.json").exists()]
    if unfinished:
        raise FileNotFoundError(f"{unfinished[0]}/metrics.json: fold not finished; fix: run src/03_train.py for "
                                f"{run_dir.name} on every fold first")
    oof = pd.concat([pd.read_parquet(f / "oof.parquet") for f in folds], ignore_index=True)
    dup = oof.example_id[oof.example_id.duplicated()]
    missing = set(train.example_id) - set(oof.example_id)
    extra = set(oof.example_id) - set(train.example_id)
    if len(dup) or missing or extra:
        raise ValueError(f"{run_dir}: OOF must cover every training example once; {len(dup)} duplicated, "
                         f"{len(missing)} missing, {len(extra)} unknown example_ids; fix: delete {run_dir} and "
                         f"retrain (the folds or the training table changed)")
    tests = pd.concat([pd.read_parquet(f / "test.parquet") for f in folds], ignore_index=True)
    counts = tests.groupby("example_id").size()
    if set(counts.index) != set(test.example_id) or (counts != n_folds).any():
        raise ValueError(f"{run_dir}: test predictions do not cover the test set once per fold; "
                         f"fix: delete {run_dir} and retrain")
    tests = tests.groupby("example_id", sort=True).mean()
    return oof.sort_values("example_id").reset_index(drop=True), tests.reset_index()


def train_and_score(cfg) -> float:
    """Train every fold of the experiment (skipping finished ones) and return its CV metric over all OOF rows."""
    from .prepare import load_prepared, prepare
    from .train import train_fold
    prepare(cfg)
    for k in range(cfg.n_folds):
        train_fold(cfg.__class__({**cfg, "fold": k}), k)
    train, test = load_prepared(cfg)
    oof, _ = load_member(cfg.run_dir, train, test, cfg.n_folds)
    return task_metric(cfg.task, train.merge(oof, on="example_id", validate="one_to_one"))
