"""Second-level model: LightGBM over the members' out-of-fold outputs, lexical match features and query-group
features, trained on the members' folds so that its own CV is out-of-fold too (the blend stage's `stack=True`).

In: the task's labelled rows (example_id, query_id, fold, esci_label, product_locale) and test rows, each member's
(oof, test) prediction frames aligned with them (sorted by example_id), and the match features (esci.lexical,
esci.dense).
Out: (oof, test) frames in the blend's columns (task 1 `score`, task 2 p_E p_S p_C p_I, task 3 `p_sub`), the CV and
task 3's threshold. Features per row:
  member outputs     every prediction column of every member (p_E..p_I and the expected gain, a regressor's score)
  lexical            esci.lexical.FEATURES, and with bi_encoders each encoder's cosines per text (esci.dense)
  query group        for each member score and the lexical cosines: rank in the query (0..1), gap to the query's
                     max, gap to its mean; the query's number of items; the locale
Objective: lambdarank with the ESCI gains as label gains (task 1; or a pointwise one such as cross_entropy on the
gains, stack_params={"objective": "cross_entropy"}), multiclass (task 2), binary (task 3). For fold k
the model is fit on the other folds' rows; the test prediction is the mean of the K models on the members' test
outputs (themselves fold-averaged). stack_params={"bags": n}: each fold's model is the mean of n models whose random
seeds (bagging, feature fraction) differ, which narrows the spread between two seeds of a small stack.
"""
from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import pandas as pd

from . import GAINS, LABELS, LOCALES
from .tasks import HEADS, PROB_COLUMNS, targets

log = logging.getLogger("esci")

# small trees, slow learning: chosen by CV on real titles (bench/RESULTS.md, the drivers' choices), where a stacker
# sees about 9,000 rows; with millions of rows, larger trees (num_leaves 31) may pay. min_data_in_leaf, unless given,
# is a 30th of the rows a fold model is fit on, within [20, 200] (200 on the dev set; a few hundred rows need 20)
DEFAULTS = dict(learning_rate=0.02, num_leaves=4, feature_fraction=0.8, bagging_fraction=0.8, bagging_freq=1,
                lambda_l2=1.0, num_boost_round=300, bags=1, verbose=-1)
PREDICTIONS = {"score", *(c for head in HEADS.values() for c in head.columns)}
GROUPED = ("score", "p_E", "p_S", "p_sub", "tfidf_char", "tfidf_word", "bm25",
           *(f"cos_{field}" for field in ("title", "side", "desc", "title_desc")))


def group_features(frame: pd.DataFrame, query: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """Per row, for each column: its rank within the query (0..1), minus the query's max, minus the query's mean."""
    g = frame[columns].groupby(query, sort=False)
    size = g[columns[0]].transform("size").to_numpy()
    rank = (g.rank(method="average").to_numpy() - 1) / np.maximum(size[:, None] - 1, 1)
    values = frame[columns].to_numpy(np.float32)
    parts = {"group_size": size.astype(np.float32)}
    for i, c in enumerate(columns):
        parts[f"{c}.rank"] = rank[:, i].astype(np.float32)
    gap_max = values - g.transform("max").to_numpy(np.float32)
    gap_mean = values - g.transform("mean").to_numpy(np.float32)
    for i, c in enumerate(columns):
        parts[f"{c}.to_max"], parts[f"{c}.to_mean"] = gap_max[:, i], gap_mean[:, i]
    return pd.DataFrame(parts, index=frame.index)


def design(rows: pd.DataFrame, members: dict[str, pd.DataFrame], lexical: pd.DataFrame) -> pd.DataFrame:
    """The feature matrix of `rows` (aligned, sorted by example_id like every member frame)."""
    parts = {}
    for name, frame in members.items():
        for c in [c for c in frame.columns if c in PREDICTIONS]:
            parts[f"{name}.{c}"] = frame[c].to_numpy(np.float32)
    x = pd.DataFrame(parts)
    lex = rows[["example_id"]].merge(lexical, on="example_id", how="left", validate="one_to_one")
    x = pd.concat([x, lex.drop(columns="example_id").reset_index(drop=True)], axis=1)
    grouped = [c for c in x.columns if c.split(".")[-1] in GROUPED]
    x = pd.concat([x, group_features(x, rows.query_id.to_numpy(), grouped)], axis=1)
    x["locale"] = rows.product_locale.map({loc: i for i, loc in enumerate(LOCALES)}).fillna(-1).to_numpy(np.float32)
    return x


RANKING = ("lambdarank", "rank_xendcg")  # objectives that read each query's rows as a group
BY_GAIN = sorted(LABELS, key=GAINS.get)  # a ranking objective's integer labels: I 0, C 1, S 2, E 3


def _objective(task: int, params: dict) -> dict:
    if task == 1 and params.get("objective", "lambdarank") == "lambdarank":
        return dict(objective="lambdarank", label_gain=[GAINS[label] for label in BY_GAIN],
                    lambdarank_truncation_level=1000, eval_at=[1000])
    if task == 1:  # pointwise, e.g. cross_entropy: the gain as the target
        return {}
    if task == 2:
        return dict(objective="multiclass", num_class=len(LABELS))
    return dict(objective="binary")


def _targets(task: int, rows: pd.DataFrame, objective: str) -> np.ndarray:
    """The training heads' targets (gains, E/S/C/I ids, substitute or not); ranking objectives: ids by gain."""
    if task == 1 and objective in RANKING:
        return rows.esci_label.map({label: i for i, label in enumerate(BY_GAIN)}).to_numpy(np.int32)
    return targets(rows, {1: "reg", 2: "cls4", 3: "cls2"}[task])


def _frame(task: int, pred: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
    if task == 1:
        return pd.DataFrame({"score": pred, "example_id": ids})
    if task == 2:
        return pd.DataFrame(pred, columns=PROB_COLUMNS["cls4"]).assign(example_id=ids)
    return pd.DataFrame({"p_sub": pred, "example_id": ids})


def _bag(params: dict, b: int) -> dict:
    """The seeds of a fold's b-th model: each given seed moved by b (LightGBM derives the others from `seed`)."""
    return {k: params[k] + b for k in ("seed", "bagging_seed", "feature_fraction_seed") if k in params}


def fit_predict(task: int, train: pd.DataFrame, x: pd.DataFrame, test: pd.DataFrame, x_test: pd.DataFrame,
                params: dict, seed: int, threads: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-fold predictions over train's folds and the fold models' mean on test."""
    params = {**DEFAULTS, **_objective(task, params), **params, "seed": seed, "num_threads": threads}
    rounds, bags = int(params.pop("num_boost_round")), int(params.pop("bags"))
    y = _targets(task, train, params["objective"])
    order = np.argsort(train.query_id.to_numpy(), kind="stable")  # lambdarank needs each query's rows together
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    xs, ys, fold, query = x.iloc[order], y[order], train.fold.to_numpy()[order], train.query_id.to_numpy()[order]
    width = len(LABELS) if task == 2 else 1
    oof = np.zeros((len(train), width))
    pred_test = np.zeros((len(test), width))
    folds = np.unique(fold)
    for k in folds:
        fit = fold != k
        group = None
        if params["objective"] in RANKING:
            _, group = np.unique(query[fit], return_counts=True)  # query ids sorted, so in order
        data = lgb.Dataset(xs[fit], ys[fit], group=group, free_raw_data=True)
        leaf = {"min_data_in_leaf": int(np.clip(fit.sum() // 30, 20, 200))}
        for b in range(bags):
            model = lgb.train({**leaf, **params, **_bag(params, b)}, data, num_boost_round=rounds)
            oof[~fit] += model.predict(xs[~fit]).reshape(int((~fit).sum()), width) / bags
            if len(test):
                pred_test += model.predict(x_test).reshape(len(test), width) / (len(folds) * bags)
    oof = oof[inverse]
    squeeze = (lambda a: a[:, 0]) if width == 1 else (lambda a: a)
    return (_frame(task, squeeze(oof), train.example_id.to_numpy()),
            _frame(task, squeeze(pred_test), test.example_id.to_numpy()))


def stack(cfg, train: pd.DataFrame, test: pd.DataFrame, oofs: dict, tests: dict,
          lexical: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """train/test: the task's rows sorted by example_id; oofs/tests: each member's full prediction frames."""
    x, x_test = design(train, oofs, lexical), design(test, tests, lexical)
    log.info("stacking task %d: %d rows x %d features, %d folds", cfg.task, *x.shape, train.fold.nunique())
    oof, pred = fit_predict(cfg.task, train, x, test, x_test, dict(cfg.stack_params), cfg.seed, cfg.threads)
    return oof, pred, x.shape[1]
