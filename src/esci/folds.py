"""Query-grouped K folds, stratified over each query's label presence and locale.

In: a task's training table (query_id, esci_label, product_locale). Out: a frame (query_id, fold), one row per
query, written once by the prepare stage and read by every later stage. Queries are sorted by id before
splitting and the splitter is seeded, so the folds are the same on every machine and Python run (no salted hash()).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from . import LABELS, LOCALES


def make_folds(train: pd.DataFrame, n_folds: int = 5, seed: int = 42) -> pd.DataFrame:
    per_query = train.groupby("query_id").agg(labels=("esci_label", set), locale=("product_locale", "first"))
    per_query = per_query.sort_index()
    if len(per_query) < n_folds:
        raise ValueError(f"{len(per_query)} training queries cannot make {n_folds} folds; fix: lower n_folds")
    locales = sorted(set(LOCALES) | set(per_query.locale))
    y = np.array([[lab in labs for lab in LABELS] + [loc == l for l in locales]
                  for labs, loc in zip(per_query["labels"], per_query["locale"])], dtype=np.int8)
    fold = np.full(len(per_query), -1, dtype=np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, val) in enumerate(splitter.split(np.zeros((len(y), 1)), y)):
        fold[val] = k
    return pd.DataFrame({"query_id": per_query.index.to_numpy(), "fold": fold})


def attach_folds(train: pd.DataFrame, folds: pd.DataFrame) -> pd.DataFrame:
    """Add the `fold` column; every training query must have one."""
    out = train.merge(folds, on="query_id", how="left", validate="many_to_one")
    if out.fold.isna().any():
        q = out.query_id[out.fold.isna()].iat[0]
        raise ValueError(f"folds file: query_id {q} has no fold; fix: delete the folds file and rerun prepare")
    out["fold"] = out.fold.astype("int64")
    return out
