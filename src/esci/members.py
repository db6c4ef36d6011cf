"""Read a finished experiment's predictions for the rows a caller scores: OOF rows and fold-averaged test rows.

In: an experiment's config, its output/<profile>/<backbone>/<name>/fold*/ {oof,test}.parquet (each fold checked to
have been made from that config and the current data) and the rows needed (a task's labelled and test rows). An
experiment can serve any task whose rows its own rows cover (a 4-class model trained on the large version serves
tasks 1, 2 and 3); its predictions for other rows are left out.
Out: (oof, test) frames keyed by example_id, sorted. Every needed training row must have exactly one OOF
prediction and every needed test row one prediction per fold; anything else raises, naming the experiment and
the fix.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import EsciError
from .io import read_parquet
from .provenance import check_fold


def load_member(mcfg, train: pd.DataFrame, test: pd.DataFrame):
    run_dir, n_folds = mcfg.run_dir, mcfg.n_folds
    folds = [mcfg.fold_dir(k) for k in range(n_folds)]
    unfinished = [str(f) for k, f in enumerate(folds) if not mcfg.fold_complete(k)]
    if unfinished:
        raise EsciError(f"{unfinished[0]}/metrics.json: fold not finished; fix: run src/03_train.py for "
                        f"{run_dir.name} on every fold first")
    for f in folds:
        check_fold(mcfg, f)
    oof = pd.concat([read_parquet(f / "oof.parquet") for f in folds], ignore_index=True)
    need = np.sort(train.example_id.to_numpy())
    oof = oof[oof.example_id.isin(need)].sort_values("example_id", kind="stable").reset_index(drop=True)
    dup = int(oof.example_id.duplicated().sum())
    if dup or len(oof) != len(need):
        raise EsciError(f"{run_dir}: OOF must cover every scored training example once; {dup} duplicated, "
                         f"{len(need) - len(oof) + dup} missing; fix: use a member whose rows cover the task's "
                         f"(config key rows), or delete {run_dir} and retrain (the folds or the data changed)")
    tests = pd.concat([read_parquet(f / "test.parquet") for f in folds], ignore_index=True)
    tests = tests[tests.example_id.isin(test.example_id)]
    counts = tests.groupby("example_id").size()
    if len(counts) != test.example_id.nunique() or (counts != n_folds).any():
        raise EsciError(f"{run_dir}: test predictions do not cover the scored test rows once per fold; "
                         f"fix: use a member whose rows cover the task's, or delete {run_dir} and retrain")
    tests = tests.groupby("example_id", sort=True).mean()
    return oof, tests.reset_index()
