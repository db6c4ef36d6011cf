"""KDD Cup 2022 submission files: writers and validators for the three tasks.

Formats (CSV with header):
  task 1  query_id,product_id            every test (query, product) pair once, rows of a query in ranked order
  task 2  example_id,esci_label          exact / substitute / complement / irrelevant
  task 3  example_id,substitute_label    substitute / no_substitute
Writers take prediction frames keyed by example_id (task 1: query_id, product_id, score) and write atomically.
`validate()` checks a written file against the task's test table and raises `SubmissionError` naming the problem.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import LABEL_NAMES
from .io import write_csv

COLUMNS = {1: ["query_id", "product_id"], 2: ["example_id", "esci_label"], 3: ["example_id", "substitute_label"]}
ALLOWED = {2: set(LABEL_NAMES.values()), 3: {"substitute", "no_substitute"}}


class SubmissionError(ValueError):
    pass


def write_task1(pred: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """pred: query_id, product_id, score; higher score ranks first, ties by product_id for a fixed order."""
    out = pred.sort_values(["query_id", "score", "product_id"], ascending=[True, False, True], kind="stable")
    out = out[COLUMNS[1]]
    write_csv(out, path)
    return out


def write_task2(pred: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """pred: example_id, esci_label in E/S/C/I."""
    out = pd.DataFrame({"example_id": pred.example_id, "esci_label": pred.esci_label.map(LABEL_NAMES)})
    write_csv(out.sort_values("example_id"), path)
    return out


def write_task3(pred: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """pred: example_id, substitute (bool)."""
    out = pd.DataFrame({"example_id": pred.example_id,
                        "substitute_label": pred.substitute.map({True: "substitute", False: "no_substitute"})})
    write_csv(out.sort_values("example_id"), path)
    return out


def _first(values) -> str:
    values = list(values)
    return f"{len(values)} (first: {values[0]})"


def validate(task: int, path: str | Path, test: pd.DataFrame) -> dict:
    """Check a submission file against the task's test table (example_id, query_id, product_id)."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path}: submission file not found; fix: run the submission stage")
    sub = pd.read_csv(path, dtype={"product_id": str})
    if list(sub.columns) != COLUMNS[task]:
        raise SubmissionError(f"{path}: columns {list(sub.columns)}, expected {COLUMNS[task]}; "
                              f"fix: write it with esci.submission.write_task{task}")
    if task == 1:
        got = list(zip(sub.query_id, sub.product_id))
        want = set(zip(test.query_id, test.product_id))
        what = "(query_id, product_id) pairs"
    else:
        got = list(sub.example_id)
        want = set(test.example_id)
        what = "example_ids"
        bad = ~sub[COLUMNS[task][1]].isin(ALLOWED[task])
        if bad.any():
            raise SubmissionError(f"{path}: column '{COLUMNS[task][1]}' has values outside "
                                  f"{sorted(ALLOWED[task])}: {_first(sub[COLUMNS[task][1]][bad].unique())}; "
                                  f"fix: map labels with esci.LABEL_NAMES")
    seen = pd.Series(got)
    dup = seen[seen.duplicated()]
    if len(dup):
        raise SubmissionError(f"{path}: {_first(dup)} duplicated {what}; fix: one row per test item")
    unknown = set(got) - want
    if unknown:
        raise SubmissionError(f"{path}: {_first(sorted(unknown))} {what} not in the test set; "
                              f"fix: predict for the test split of the task's version only")
    missing = want - set(got)
    if missing:
        raise SubmissionError(f"{path}: {_first(sorted(missing))} {what} of the test set missing; "
                              f"fix: every test item needs exactly one prediction")
    return {"rows": len(sub), "file": str(path)}
