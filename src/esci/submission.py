"""KDD Cup 2022 submission files: writers and validators for the three tasks.

Formats (CSV with header):
  task 1  query_id,product_id            every test (query, product) pair once, rows of a query in ranked order
  task 2  example_id,esci_label          exact / substitute / complement / irrelevant
  task 3  example_id,substitute_label    substitute / no_substitute
Writers take prediction frames keyed by example_id (task 1: query_id, product_id, score) and write atomically.
`validate()` checks a written file against the task's test table and raises `SubmissionError` naming the problem.
`score()` scores a validated file against labelled test rows the way the official figures are computed: task 1
nDCG of the file's order with the intended gains and with the official scorer's (S and C swapped), tasks 2 and 3
micro-F1; overall and per locale.
`python -m esci.submission TASK FILE DATA_DIR` checks a file on its own against the test split of the ESCI files in
DATA_DIR (and scores it where that split is labelled): one line, exit 0 when valid, 2 when not.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import LABEL_NAMES, EsciError
from .metrics import f1_report, ndcg_report
from .io import read_parquet, write_csv

COLUMNS = {1: ["query_id", "product_id"], 2: ["example_id", "esci_label"], 3: ["example_id", "substitute_label"]}
ALLOWED = {2: set(LABEL_NAMES.values()), 3: {"substitute", "no_substitute"}}


class SubmissionError(EsciError):
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


FIX_LABELS = {2: "use exact, substitute, complement or irrelevant (esci.LABEL_NAMES maps E/S/C/I to them)",
              3: "use substitute or no_substitute (S -> substitute; E, C and I -> no_substitute)"}


def _first(df: pd.DataFrame, mask, cols: list[str], where: str = "at row") -> str:
    """"N (first: values at row r)" for the rows where mask holds (r counts data rows of the file from 0)."""
    mask = np.asarray(mask)
    row = df[cols][mask].iloc[0]
    at = f" {where} {int(mask.argmax())}" if where else ""
    return f"{int(mask.sum())} (first: {', '.join(str(v) for v in row)}{at})"


def validate(task: int, path: str | Path, test: pd.DataFrame) -> dict:
    """Check a submission file against the task's test table (example_id, query_id, product_id)."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path}: submission file not found; fix: run the submission stage")
    if path.stat().st_size == 0:
        raise SubmissionError(f"{path}: file is empty; fix: run the submission stage again")
    try:
        sub = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise SubmissionError(f"{path}: not a readable CSV ({type(e).__name__}); fix: write it with "
                              f"esci.submission.write_task{task}") from None
    if list(sub.columns) != COLUMNS[task]:
        raise SubmissionError(f"{path}: columns {list(sub.columns)}, expected {COLUMNS[task]}; "
                              f"fix: write it with esci.submission.write_task{task}")
    key = COLUMNS[task][:2] if task == 1 else COLUMNS[task][:1]
    ids = key[0]
    bad = ~sub[ids].str.fullmatch(r"-?\d+")
    if bad.any():
        raise SubmissionError(f"{path}: column '{ids}' has values that are not integer ids: "
                              f"{_first(sub, bad, [ids])}; fix: write ids as integers (14780, not 14780.0)")
    sub[ids] = sub[ids].astype(np.int64)
    if task != 1:
        col = COLUMNS[task][1]
        bad = ~sub[col].isin(ALLOWED[task])
        if bad.any():
            raise SubmissionError(f"{path}: column '{col}' has values outside {sorted(ALLOWED[task])}: "
                                  f"{_first(sub, bad, [col])}; fix: {FIX_LABELS[task]}")
    what = "(query_id, product_id) pairs" if task == 1 else "example_ids"
    dup = sub.duplicated(key)
    if dup.any():
        raise SubmissionError(f"{path}: {_first(sub, dup, key)} duplicated {what}; fix: one row per test item")
    want = test[key].astype({ids: np.int64, **({"product_id": str} if task == 1 else {})})
    got_idx, want_idx = pd.MultiIndex.from_frame(sub[key]), pd.MultiIndex.from_frame(want)
    unknown = ~got_idx.isin(want_idx)
    if unknown.any():
        raise SubmissionError(f"{path}: {_first(sub, unknown, key)} {what} not in the test set; "
                              f"fix: predict for the test split of the task's version only")
    missing = ~want_idx.isin(got_idx)
    if missing.any():
        raise SubmissionError(f"{path}: {_first(want, missing, key, '')} {what} of the test set missing; "
                              f"fix: every test item needs exactly one prediction")
    return {"rows": len(sub), "file": str(path)}


def labelled_test(cfg, test: pd.DataFrame) -> pd.DataFrame | None:
    """The test rows with their labels from test_labels.parquet (kept apart by the prepare stage; only evaluation
    reads it: stage 7 and the peers' table), or None when the test split has no labels."""
    path = cfg.data_root / "test_labels.parquet"
    if not path.exists():
        return None
    return test.merge(read_parquet(path), on="example_id", validate="one_to_one")


def score(task: int, path: str | Path, labelled: pd.DataFrame) -> dict:
    """labelled: the task's test rows (example_id, query_id, product_id, product_locale) with their esci_label."""
    sub = pd.read_csv(path, dtype={"product_id": str})
    if task == 1:  # the file's order is the ranking: earlier rows score higher
        ranked = sub.assign(score=-np.arange(len(sub), dtype=float))
        df = labelled.merge(ranked, on=["query_id", "product_id"], validate="one_to_one")
        return ndcg_report(df)
    names = {v: k for k, v in LABEL_NAMES.items()} if task == 2 else {"substitute": "S", "no_substitute": "N"}
    sub = sub.rename(columns={COLUMNS[task][1]: "submitted"})
    df = labelled.merge(sub, on="example_id", validate="one_to_one")
    df["pred"] = df.submitted.map(names)
    df["truth"] = df.esci_label if task == 2 else df.esci_label.where(df.esci_label.eq("S"), "N")
    return f1_report(df, "pred", "truth")


USAGE = "usage: python -m esci.submission TASK FILE DATA_DIR   (TASK 1, 2 or 3; DATA_DIR holds the ESCI parquet files)"


def main(argv: list[str] | None = None) -> None:
    from .data import EXAMPLES, _read_parquet, validate_examples
    from .tasks import METRIC_NAME, TASKS
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip() + "\n\n" + USAGE)
        return
    if len(argv) != 3 or argv[0] not in ("1", "2", "3"):
        print(f"submission: error: {USAGE}", file=sys.stderr)
        sys.exit(2)
    task, path, data_dir = int(argv[0]), Path(argv[1]), Path(argv[2])
    try:
        examples = validate_examples(_read_parquet(data_dir / EXAMPLES), data_dir / EXAMPLES)
        test = examples[examples[TASKS[task].version].eq(1) & examples.split.eq("test")]
        info = validate(task, path, test)
    except EsciError as e:
        print(f"submission: error: {e}", file=sys.stderr)
        sys.exit(2)
    line = f"{path}: a valid task {task} submission ({info['rows']} rows)"
    if len(test) and test.esci_label.notna().all():
        metric = METRIC_NAME[task]
        line += f"; {metric} {score(task, path, test)[metric]:.4f} on the labelled test split"
    print(line)


if __name__ == "__main__":
    main()
