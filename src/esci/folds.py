"""Query-grouped K folds, stratified over each query's label presence and locale.

In: the training judgements of the data set (query_id, esci_label, product_locale). Out: a frame (query_id, fold),
one row per query, made once by the prepare stage for every task (a task's folds are these folds on its rows).
Queries are sorted by id before splitting and the splitter is seeded, so the folds are the same on every machine
and Python run (no salted hash()).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from . import LABELS, LOCALES, EsciError


def make_folds(train: pd.DataFrame, n_folds: int = 5, seed: int = 42) -> pd.DataFrame:
    qid, qrow = np.unique(train.query_id.to_numpy(), return_inverse=True)
    if len(qid) < n_folds:
        raise EsciError(f"{len(qid)} training queries cannot make {n_folds} folds; fix: lower n_folds")
    locales = sorted(set(LOCALES) | set(train.product_locale.unique()))
    # per query: which labels it has, then its locale (one-hot)
    y = np.zeros((len(qid), len(LABELS) + len(locales)), dtype=np.int8)
    y[qrow, pd.Categorical(train.esci_label, categories=LABELS).codes] = 1
    y[qrow, len(LABELS) + pd.Categorical(train.product_locale, categories=locales).codes] = 1
    fold = np.full(len(qid), -1, dtype=np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, val) in enumerate(splitter.split(np.zeros((len(y), 1)), y)):
        fold[val] = k
    return pd.DataFrame({"query_id": qid, "fold": fold})

