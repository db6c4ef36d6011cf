"""What differs between tasks and between heads, in one place: two tables and the functions that read them.

TASKS: per task, the version whose rows it scores, its metric, and the columns its blend reads from a member.
HEADS: per head, its outputs, its training targets, the tasks whose blends can take it, and its prediction columns.
Prediction tables (oof.parquet, test.parquet) are keyed by example_id and hold, by head:
  cls4  p_E p_S p_C p_I and score = expected gain 1*p_E + 0.1*p_S + 0.01*p_C  (serves tasks 1, 2 and 3)
  cls2  p_sub and score = p_sub                                                 (serves task 3)
  reg   score (predicted gain)                                                  (serves task 1)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import GAINS, LABELS
from .metrics import micro_f1, ndcg


@dataclass(frozen=True)
class Task:
    version: str      # examples column whose rows the task scores
    metric: str       # name of its metric in metrics.json, cv.csv and results
    blend_read: str   # what a blend takes from a member: score (task 1), probs (task 2), sub (task 3)


@dataclass(frozen=True)
class Head:
    n_out: int
    columns: tuple    # probability columns of its prediction tables (besides `score`)
    serves: tuple     # tasks whose blends can take its predictions


TASKS = {1: Task("small_version", "ndcg", "score"), 2: Task("large_version", "micro_f1", "probs"),
         3: Task("large_version", "micro_f1", "sub")}
HEADS = {"cls4": Head(4, tuple(f"p_{label}" for label in LABELS), (1, 2, 3)), "cls2": Head(2, ("p_sub",), (3,)),
         "reg": Head(1, (), (1,))}
METRIC_NAME = {t: task.metric for t, task in TASKS.items()}
PROB_COLUMNS = {h: list(head.columns) for h, head in HEADS.items()}


def targets(df: pd.DataFrame, head: str) -> np.ndarray:
    if head == "cls4":
        return df.esci_label.map({label: i for i, label in enumerate(LABELS)}).to_numpy(np.int64)
    if head == "cls2":
        return df.esci_label.eq("S").to_numpy(np.int64)
    return df.esci_label.map(GAINS).to_numpy(np.float32)


def expected_gain(p: np.ndarray) -> np.ndarray:
    """Task 1's score of E/S/C/I probabilities (rows, in LABELS order)."""
    return p @ np.array([GAINS[label] for label in LABELS])


def outputs_frame(head: str, example_id: np.ndarray, out: torch.Tensor) -> pd.DataFrame:
    out = out.float()
    df = pd.DataFrame({"example_id": example_id})
    if head == "cls4":
        p = out.softmax(-1).numpy()
        for i, c in enumerate(HEADS["cls4"].columns):
            df[c] = p[:, i]
        df["score"] = expected_gain(p)
    elif head == "cls2":
        df["p_sub"] = df["score"] = out.softmax(-1)[:, 1].numpy()
    else:
        df["score"] = out[:, 0].numpy()
    return df


def truth_labels(task: int, df: pd.DataFrame) -> pd.Series:
    """The labels a task scores: E/S/C/I, or for task 3 'S' and 'N' (not substitute)."""
    return df.esci_label.where(df.esci_label.eq("S"), "N") if task == 3 else df.esci_label


def sub_prob(pred: pd.DataFrame) -> pd.Series:
    """The substitute probability: p_sub of 2-class heads, p_S of 4-class ones."""
    return pred["p_sub"] if "p_sub" in pred else pred["p_S"]


def predicted_labels(task: int, pred: pd.DataFrame, threshold: float = 0.5) -> pd.Series:
    """Task 2: argmax label; task 3: 'S' when the substitute probability passes the threshold, else 'N'."""
    if task == 2:
        cols = PROB_COLUMNS["cls4"]
        return pd.Series(np.array(LABELS)[pred[cols].to_numpy().argmax(1)], index=pred.index)
    return pd.Series(np.where(sub_prob(pred) > threshold, "S", "N"), index=pred.index)


def task_metric(task: int, df: pd.DataFrame, threshold: float = 0.5) -> float:
    """df: labelled rows (query_id, esci_label) joined with prediction columns; threshold: task 3's."""
    if task == 1:
        return ndcg(df, "score")
    return micro_f1(truth_labels(task, df), predicted_labels(task, df, threshold))
