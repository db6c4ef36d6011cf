"""Ensemble blending tuned on OOF predictions, never on a leaderboard.

In: the task's prepared tables and several experiments' (oof, test) frames, joined by example_id.
Out: output/<profile>/<blend name>/ with oof.parquet and test.parquet (blended, keyed by example_id), cv.csv
(each member's CV and the blend's, with weights) and blend.json (weights, threshold, metric).
Weights are searched on a simplex grid in steps of 1/blend_steps; ties keep the first (most even) in grid order.
  task 1  score = sum_m w_m * score_m (classifiers' expected gain, regressors' predicted gain), by nDCG
  task 2  p = sum_m w_m * p_m, argmax, by micro-F1
  task 3  p_sub = sum_m w_m * p_sub_m (p_S for 4-class members) and a threshold, by micro-F1
"""
from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd

from .io import write_csv, write_json, write_parquet
from .members import load_member
from .tasks import METRIC_NAME, PROB_COLUMNS, sub_prob, task_metric

log = logging.getLogger("esci")
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)


def blend_columns(task: int, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a member contributes to the blend of its task."""
    if task == 1:
        return frame[["score"]]
    if task == 2:
        return frame[PROB_COLUMNS["cls4"]]
    return sub_prob(frame).rename("p_sub").to_frame()


def simplex(n: int, steps: int):
    for combo in itertools.product(range(steps + 1), repeat=n - 1):
        if sum(combo) <= steps:
            yield np.array((steps - sum(combo),) + combo) / steps


def _metric(task, labelled, pred, threshold=0.5):
    return task_metric(task, labelled.merge(pred, on="example_id", validate="one_to_one"), threshold)


def mix(parts: list[pd.DataFrame], weights) -> pd.DataFrame:
    out = sum(w * p.to_numpy() for w, p in zip(weights, parts))
    return pd.DataFrame(out, columns=parts[0].columns)


def best_threshold(labelled, pred) -> tuple[float, float]:
    df = labelled.merge(pred, on="example_id", validate="one_to_one")
    truth, p = df.esci_label.eq("S").to_numpy(), df.p_sub.to_numpy()
    scores = [((p > t) == truth).mean() for t in THRESHOLDS]
    i = int(np.argmax(scores))
    return float(THRESHOLDS[i]), float(scores[i])


def run_blend(cfg, train: pd.DataFrame, test: pd.DataFrame, member_cfgs: list) -> dict:
    if not cfg.members:
        raise ValueError(f"{cfg.name}: config lists no members; fix: set members=[...] in the blend config")
    labelled = train[["example_id", "query_id", "esci_label", "product_locale"]]
    oofs, tests = [], []
    for mcfg in member_cfgs:
        oof, tst = load_member(mcfg.run_dir, train, test, cfg.n_folds)
        oofs.append(blend_columns(cfg.task, oof).set_axis(oof.example_id))
        tests.append(blend_columns(cfg.task, tst).set_axis(tst.example_id))
    ids_oof, ids_test = np.sort(train.example_id.to_numpy()), np.sort(test.example_id.to_numpy())
    oofs = [o.loc[ids_oof].reset_index(drop=True) for o in oofs]
    tests = [t.loc[ids_test].reset_index(drop=True) for t in tests]

    def framed(parts, weights, ids):
        return mix(parts, weights).assign(example_id=ids)

    rows = []
    for name, o in zip(cfg.members, oofs):
        rows.append({"member": name, METRIC_NAME[cfg.task]: _metric(cfg.task, labelled, o.assign(example_id=ids_oof))})
    best = (-np.inf, None, 0.5)
    for w in simplex(len(oofs), cfg.blend_steps):
        pred = framed(oofs, w, ids_oof)
        if cfg.task == 3:
            t, m = best_threshold(labelled, pred)
        else:
            t, m = 0.5, _metric(cfg.task, labelled, pred)
        if m > best[0] + 1e-12:
            best = (m, w, t)
    metric, weights, threshold = best
    for r, wt in zip(rows, weights):
        r["weight"] = float(wt)
    rows.append({"member": "blend", METRIC_NAME[cfg.task]: metric, "weight": 1.0})
    out = cfg.run_dir
    blend_oof, blend_test = framed(oofs, weights, ids_oof), framed(tests, weights, ids_test)
    write_parquet(blend_oof, out / "oof.parquet")
    write_parquet(blend_test, out / "test.parquet")
    cv = pd.DataFrame(rows)
    write_csv(cv, out / "cv.csv")
    summary = {"task": cfg.task, "members": cfg.members, "weights": [float(x) for x in weights],
               "threshold": threshold, METRIC_NAME[cfg.task]: metric}
    write_json(summary, out / "blend.json")
    log.info("blend %s:\n%s", cfg.name, cv.to_string(index=False))
    return summary
