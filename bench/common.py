"""What the bench commands share: their command line, training every fold of an experiment and scoring its OOF
on its task's rows, and writing their table."""
import sys

import pandas as pd

from esci.config import Config, from_argv
from esci.io import write_csv
from esci.log import setup
from esci.members import load_member
from esci.prepare import load_examples, prepare, task_rows
from esci.submission import labelled_test
from esci.tasks import HEADS, METRIC_NAME, task_metric
from esci.train import train_fold

DEFAULT_CONFIGS = ["configs/cpu.py", "configs/t2_a.py"]


ARGUMENTS = """
Arguments: config files (configs/<name>.py, later files win; default {defaults}), then key=value overrides of
any key in configs/base.py (python src/03_train.py --help lists them). Environment: DATA_DIR, OUTPUT_DIR,
MODEL_DIR as for the stages."""


def bench_config(name: str, argv: list[str], doc: str) -> Config:
    """Config files then key=value overrides, as a stage takes them (default: the CPU profile and t2_a); --help
    prints `doc` (the command's docstring) and the arguments, and exits."""
    if "-h" in argv or "--help" in argv:
        print(doc.strip() + ARGUMENTS.format(defaults=" ".join(DEFAULT_CONFIGS)))
        sys.exit(0)
    setup(name)
    files = [a for a in argv if "=" not in a] or DEFAULT_CONFIGS
    return from_argv(files + [a for a in argv if "=" in a])


def scored(task, labelled, pred, threshold=0.5):
    """The task metric of prediction frame `pred` (keyed by example_id) on `labelled` rows; NaN without labels."""
    if labelled is None:
        return float("nan")
    return task_metric(task, labelled.merge(pred, on="example_id", validate="one_to_one"), threshold)


def write_table(cfg: Config, table: pd.DataFrame, name: str) -> None:
    """output/<profile>/<encoder>/tables/<name>.csv, and printed."""
    out = cfg.run_dir.parent / "tables" / f"{name}.csv"
    write_csv(table, out)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}", na_rep="-"))
    print(f"table: {out}")


def train_and_score(cfg) -> float:
    """Train every fold of the experiment (skipping finished ones) and return its CV metric over its task's rows."""
    prepare(cfg)
    for k in range(cfg.n_folds):
        train_fold(cfg.replace(fold=k), k)
    train, test = task_rows(load_examples(cfg), cfg.task)
    oof, _ = load_member(cfg, train, test)
    return scored(cfg.task, train, oof)


def task_scores(cfg, examples) -> dict:
    """(CV, test) of a finished experiment on every task its head serves; test NaN where the split has no labels."""
    out = {}
    for t in HEADS[cfg.head].serves:
        train, test = task_rows(examples, t)
        oof, pred = load_member(cfg, train, test)
        out[t] = scored(t, train, oof), scored(t, labelled_test(cfg, test), pred)
    return out


def score_columns(cfg, examples) -> dict:
    """{"task<k>_<metric>": CV, "task<k>_test": test} of a finished experiment, for a table's row."""
    return {col: v for t, (cv, test) in task_scores(cfg, examples).items()
            for col, v in ((f"task{t}_{METRIC_NAME[t]}", cv), (f"task{t}_test", test))}
