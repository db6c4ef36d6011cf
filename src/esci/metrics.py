"""Task metrics: nDCG for ranking (task 1) and micro-F1 for classification (tasks 2 and 3).

nDCG follows design.md: gains E 1.0, S 0.1, C 0.01, I 0, log2 discount, every labelled item of the query (no
cutoff), per query then mean. Tied scores get the expected DCG over their orderings (as sklearn's ndcg_score),
so a model cannot gain from the order rows happen to be in. A query whose items all have gain 0 scores 0 (as
sklearn and trec_eval). `official=True` swaps the S and C gains as the official trec_eval recipe did.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import GAINS

OFFICIAL_GAINS = {"E": 1.0, "S": 0.01, "C": 0.1, "I": 0.0}


def _dcg_tied(gains: np.ndarray, scores: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    g, s = gains[order], scores[order]
    discount = 1.0 / np.log2(np.arange(2, len(g) + 2))
    # groups of equal score share the mean gain of the group at each of their positions
    _, start, counts = np.unique(-s, return_index=True, return_counts=True)
    total = 0.0
    for a, n in zip(start, counts):
        total += g[a:a + n].mean() * discount[a:a + n].sum()
    return total


def query_ndcg(gains: np.ndarray, scores: np.ndarray) -> float:
    ideal = np.sort(gains)[::-1]
    idcg = float((ideal / np.log2(np.arange(2, len(ideal) + 2))).sum())
    return 0.0 if idcg == 0 else _dcg_tied(gains, scores) / idcg


def ndcg_per_query(df: pd.DataFrame, score: str = "score", label: str = "esci_label",
                   official: bool = False) -> pd.Series:
    """nDCG of each query_id; df has query_id, the label column (E/S/C/I) and a score column."""
    table = OFFICIAL_GAINS if official else GAINS
    gains = df[label].map(table)
    if gains.isna().any():
        raise ValueError(f"column '{label}' has values outside E/S/C/I: {sorted(df[label][gains.isna()].unique())}")
    g, s, q = gains.to_numpy(float), df[score].to_numpy(float), df.query_id.to_numpy()
    order = np.argsort(q, kind="stable")
    q, g, s = q[order], g[order], s[order]
    bounds = np.flatnonzero(np.diff(q)) + 1
    ids = q[np.r_[0, bounds]]
    vals = [query_ndcg(gg, ss) for gg, ss in zip(np.split(g, bounds), np.split(s, bounds))]
    return pd.Series(vals, index=pd.Index(ids, name="query_id"), name="ndcg")


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
