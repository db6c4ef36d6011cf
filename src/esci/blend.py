"""Ensemble blending tuned on OOF predictions, never on a leaderboard.

In: the task's rows (prepared tables) and several experiments' (oof, test) frames, joined by example_id. A member
may come from another task's experiments when its head serves this task and its rows cover this task's rows (a
4-class model trained on the large version serves all three tasks).
Out: output/<profile>/<blend name>/ with oof.parquet and test.parquet (blended, keyed by example_id), cv.csv
(each member's CV and the blend's, with weights) and blend.json (weights, threshold, metric).
  task 1  score = sum_m w_m * score_m (classifiers' expected gain, regressors' predicted gain), by nDCG
  task 2  p = sum_m w_m * p_m, argmax, by micro-F1
  task 3  p_sub = sum_m w_m * p_sub_m (p_S for 4-class members) and a threshold, by micro-F1
With stack=True (esci.stack), a LightGBM model over the members' full outputs, lexical features (with bi_encoders,
bi-encoder cosines too: esci.dense) and query-group features is fit out-of-fold on the same folds; cv.csv shows its
CV beside the weighted blend's, and its predictions are the ones written (and submitted).
Weights are multiples of 1/blend_steps, found by greedy ensemble selection with replacement (Caruana et al. 2004):
start from the best member, then blend_steps - 1 times add one share to the member that helps most, and keep the
best blend seen. That is members x blend_steps evaluations, not a grid that grows exponentially with the members;
every evaluation is vectorized over all rows.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from . import EsciError
from .dense import dense_features
from .io import write_csv, write_json, write_parquet
from .lexical import lexical_features
from .members import load_member
from .metrics import ndcg
from .stack import stack
from .tasks import HEADS, METRIC_NAME, PROB_COLUMNS, TASKS, sub_prob, truth_labels

log = logging.getLogger("esci")
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)


def blend_columns(task: int, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a member contributes to the blend of its task."""
    read = TASKS[task].blend_read
    if read == "score":
        return frame[["score"]]
    if read == "probs":
        return frame[PROB_COLUMNS["cls4"]]
    return sub_prob(frame).rename("p_sub").to_frame()


def best_threshold(truth_s: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """The threshold on p (from THRESHOLDS; ties keep the lowest) that maximizes accuracy of 'S iff p > t'."""
    pos, neg = np.sort(p[truth_s]), np.sort(p[~truth_s])
    right = (len(pos) - np.searchsorted(pos, THRESHOLDS, side="right")) + np.searchsorted(neg, THRESHOLDS, "right")
    i = int(np.argmax(right))
    return float(THRESHOLDS[i]), float(right[i] / len(p))


class Scorer:
    """The task metric of a blended OOF array, vectorized; task 3 also returns its best threshold."""

    def __init__(self, task: int, labelled: pd.DataFrame):
        self.task, self.labelled = task, labelled
        self.truth = truth_labels(task, labelled).to_numpy()

    def __call__(self, values: np.ndarray) -> tuple[float, float]:
        if self.task == 1:
            return ndcg(self.labelled.assign(score=values[:, 0])), 0.5
        if self.task == 2:
            return float((np.array(PROB_COLUMNS["cls4"])[values.argmax(1)] == "p_" + self.truth).mean()), 0.5
        t, m = best_threshold(self.truth == "S", values[:, 0])
        return m, t


def select_weights(parts: list[np.ndarray], score: Scorer, steps: int) -> tuple[np.ndarray, float, float]:
    """(weights, metric, threshold) by greedy selection with replacement over `steps` shares."""
    single = [score(p) for p in parts]
    counts = np.zeros(len(parts))
    counts[int(np.argmax([m for m, _ in single]))] = 1
    total = sum(c * p for c, p in zip(counts, parts))
    best = (*single[int(np.argmax([m for m, _ in single]))], counts.copy())
    for _ in range(steps - 1):
        n = counts.sum() + 1
        trials = [score((total + p) / n) for p in parts]
        j = int(np.argmax([m for m, _ in trials]))
        counts[j] += 1
        total = total + parts[j]
        if trials[j][0] > best[0] + 1e-12:
            best = (*trials[j], counts.copy())
    metric, threshold, counts = best
    return counts / counts.sum(), metric, threshold


def run_blend(cfg, train: pd.DataFrame, test: pd.DataFrame, member_cfgs: list) -> dict:
    """train/test: the task's rows (task_rows); member_cfgs: the members' experiment configs."""
    if not cfg.members:
        raise EsciError(f"{cfg.name}: config lists no members; fix: set members=[...] in the blend config")
    labelled = train.sort_values("example_id").reset_index(drop=True)
    ids_test = np.sort(test.example_id.to_numpy())
    oofs, tests, full = [], [], ({}, {})
    for mcfg in member_cfgs:
        if cfg.task not in HEADS[mcfg.head].serves:
            raise EsciError(f"{cfg.name}: member {mcfg.name} has head {mcfg.head}, which cannot serve task "
                             f"{cfg.task}; fix: use members whose head is one of "
                             f"{[h for h, head in HEADS.items() if cfg.task in head.serves]}")
        oof, tst = load_member(mcfg, labelled, test)
        full[0][mcfg.name], full[1][mcfg.name] = oof, tst
        oofs.append(blend_columns(cfg.task, oof))
        tests.append(blend_columns(cfg.task, tst))
    columns = oofs[0].columns
    score = Scorer(cfg.task, labelled)
    parts = [o.to_numpy(np.float64) for o in oofs]
    rows = [{"member": name, METRIC_NAME[cfg.task]: score(p)[0]} for name, p in zip(cfg.members, parts)]
    weights, metric, threshold = select_weights(parts, score, cfg.blend_steps)
    for r, wt in zip(rows, weights):
        r["weight"] = float(wt)
    rows.append({"member": "blend", METRIC_NAME[cfg.task]: metric, "weight": 1.0})

    def mixed(frames, ids):
        values = sum(w * f.to_numpy(np.float64) for w, f in zip(weights, frames))
        return pd.DataFrame(values, columns=columns).assign(example_id=ids)

    summary = {"task": cfg.task, "members": cfg.members, "weights": [float(x) for x in weights],
               "threshold": threshold, METRIC_NAME[cfg.task]: metric}
    if cfg.stack:
        test_rows = test.sort_values("example_id").reset_index(drop=True)
        features = lexical_features(cfg)
        if cfg.bi_encoders:
            features = features.merge(dense_features(cfg), on="example_id", validate="one_to_one")
        oof_out, test_out, n_features = stack(cfg, labelled, test_rows, *full, features)
        stacked, threshold = score(oof_out.drop(columns="example_id").to_numpy(np.float64))
        rows.append({"member": "stack", METRIC_NAME[cfg.task]: stacked, "weight": 1.0})
        summary.update({"threshold": threshold, METRIC_NAME[cfg.task]: stacked, "blend_" + METRIC_NAME[cfg.task]:
                        metric, "stack": {"features": n_features, "params": dict(cfg.stack_params)}})
    else:
        oof_out, test_out = mixed(oofs, labelled.example_id.to_numpy()), mixed(tests, ids_test)
    out = cfg.run_dir
    write_parquet(oof_out, out / "oof.parquet")
    write_parquet(test_out, out / "test.parquet")
    cv = pd.DataFrame(rows)
    write_csv(cv, out / "cv.csv")
    write_json(summary, out / "blend.json")
    log.info("blend %s:\n%s", cfg.name, cv.to_string(index=False))
    return summary
