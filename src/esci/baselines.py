"""Simple baselines on the same prepared tables and folds as the fine-tuned models, for the comparisons a
fine-tune must win.

In: a task's prepared training table (with `fold`). Out: a CV figure per baseline:
  majority        the most frequent label of the other folds (tasks 2-3, micro-F1)
  tfidf_lr        logistic regression on char 2-4-gram TF-IDF of the query, of title+brand+color, their
                  element-wise product (shared grams) and its sum (the cosine), trained fold by fold (OOF micro-F1)
  tfidf_cosine    rank by the cosine of query and title+brand+color TF-IDF vectors (task 1, nDCG)
The lexical rankers (char/word TF-IDF, BM25) read esci.lexical's features, the zero-shot bi-encoders esci.dense's
cosines; the LightGBM ranker peer is esci.stack over a bi-encoder's cosine instead of cross-encoder members
(bench/baselines.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from .metrics import micro_f1, ndcg
from .tasks import truth_labels


def product_side(df: pd.DataFrame) -> pd.Series:
    return (df.title + " " + df.brand + " " + df.color).str.strip()


def majority(task: int, train: pd.DataFrame) -> float:
    pred = pd.Series(index=train.index, dtype=object)
    for k in sorted(train.fold.unique()):
        held = train.fold == k
        pred[held] = truth_labels(task, train[~held]).value_counts().index[0]
    return micro_f1(truth_labels(task, train), pred)


def _tfidf() -> TfidfVectorizer:
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True, max_features=200000)


def tfidf_lr(task: int, train: pd.DataFrame, seed: int = 0) -> float:
    pred = pd.Series(index=train.index, dtype=object)
    truth = truth_labels(task, train)
    for k in sorted(train.fold.unique()):
        held = (train.fold == k).to_numpy()
        vec = _tfidf().fit(pd.concat([train["query"][~held], product_side(train[~held])]))
        q, p = vec.transform(train["query"]), vec.transform(product_side(train))
        shared = q.multiply(p)
        X = sp.hstack([q, p, shared, sp.csr_matrix(np.asarray(shared.sum(1)))]).tocsr()
        clf = LogisticRegression(C=1.0, max_iter=3000, random_state=seed).fit(X[~held], truth[~held])
        pred[held] = clf.predict(X[held])
    return micro_f1(truth, pred)


def tfidf_cosine(train: pd.DataFrame) -> float:
    vec = _tfidf().fit(pd.concat([train["query"], product_side(train)]))
    q, p = vec.transform(train["query"]), vec.transform(product_side(train))
    return ndcg(train.assign(score=np.asarray(q.multiply(p).sum(1)).ravel()))
