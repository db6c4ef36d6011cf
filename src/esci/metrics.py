"""Task metrics: nDCG for ranking (task 1) and micro-F1 for classification (tasks 2 and 3).

nDCG as the competition defined it: gains E 1.0, S 0.1, C 0.01, I 0, log2 discount, every labelled item of the query
(no cutoff), per query then mean. Tied scores get the expected DCG over their orderings (as sklearn's ndcg_score), so
a model cannot gain from the order rows happen to be in. A query whose items all have gain 0 scores 0 (as sklearn and
trec_eval). `official=True` swaps the S and C gains as the official trec_eval recipe did.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import GAINS

OFFICIAL_GAINS = {"E": 1.0, "S": 0.01, "C": 0.1, "I": 0.0}


def ndcg_per_query(df: pd.DataFrame, score: str = "score", label: str = "esci_label",
                   official: bool = False) -> pd.Series:
    """nDCG of each query_id; df has query_id, the label column (E/S/C/I) and a score column. Vectorized over
    all rows (one sort per call), so a release-sized table takes about a second."""
    table = OFFICIAL_GAINS if official else GAINS
    gains = df[label].map(table)
    if gains.isna().any():
        raise ValueError(f"column '{label}' has values outside E/S/C/I: {sorted(df[label][gains.isna()].unique())}")
    q, g, s = df.query_id.to_numpy(), gains.to_numpy(float), df[score].to_numpy(float)
    order = np.lexsort((-s, q))
    q, g, s = q[order], g[order], s[order]
    n = len(q)
    new_q = np.r_[True, q[1:] != q[:-1]]
    starts = np.flatnonzero(new_q)
    qrow = np.cumsum(new_q) - 1
    discount = 1.0 / np.log2(np.arange(n) - starts[qrow] + 2)
    # a group of equal scores shares the mean gain of the group at each of its positions (expected order)
    tie = np.flatnonzero(new_q | np.r_[True, s[1:] != s[:-1]])
    size = np.diff(np.r_[tie, n])
    dcg = np.bincount(qrow[tie], np.add.reduceat(g, tie) / size * np.add.reduceat(discount, tie), len(starts))
    ideal = g[np.lexsort((-g, qrow))]
    idcg = np.bincount(qrow, ideal * discount, len(starts))
    vals = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
    return pd.Series(vals, index=pd.Index(q[starts], name="query_id"), name="ndcg")


def ndcg(df: pd.DataFrame, score: str = "score", label: str = "esci_label", official: bool = False) -> float:
    return float(ndcg_per_query(df, score, label, official).mean())


def ndcg_report(df: pd.DataFrame, score: str = "score", label: str = "esci_label") -> dict:
    """Overall and per-locale nDCG, with the official-scorer-compatible figure beside it."""
    per_q = ndcg_per_query(df, score, label)
    loc = df.drop_duplicates("query_id").set_index("query_id").product_locale.reindex(per_q.index)
    out = {"ndcg": float(per_q.mean()), "ndcg_official": ndcg(df, score, label, official=True)}
    out.update({f"ndcg_{k}": float(v) for k, v in per_q.groupby(loc).mean().items()})
    return out


def micro_f1(y_true, y_pred) -> float:
    """Micro-averaged F1 over single-label predictions; equals accuracy."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(f"micro_f1 needs two equal non-empty arrays, got {len(y_true)} and {len(y_pred)}")
    return float((y_true == y_pred).mean())


def f1_report(df: pd.DataFrame, pred: str, label: str) -> dict:
    out = {"micro_f1": micro_f1(df[label], df[pred])}
    out.update({f"micro_f1_{k}": micro_f1(g[label], g[pred]) for k, g in df.groupby("product_locale")})
    return out
