"""Paper Table 6 on our data: confident learning's effect on each task, with and without the cleaned rows.

Usage: python bench/table6_cleaning.py [configs...] [key=value ...]
       (default configs: configs/sample.py configs/t2_a.py; e.g. add model_dir=tiny epochs=4 for a quick run)
The experiment is trained on every fold (finished folds are skipped), confident learning finds its label issues in
its OOF (esci.cleaning, clean_frac of the training rows), and the experiment is trained again without them as
<name>_clean. Both are scored on every task their head serves (a 4-class model: all three), over the task's rows:
validation keeps every row, the dropped ones included, as the test set would.
Out: output/<profile>/<encoder>/tables/table6_cleaning.csv (task, metric, without, with, change, rows dropped,
and on the sample the share of dropped rows whose label the generator flipped), printed too.
"""
import sys

import pandas as pd

from common import bench_config, train_and_score, write_table
from esci.cleaning import clean
from esci.members import load_member
from esci.prepare import experiment_rows, load_examples, task_rows
from esci.tasks import HEADS, METRIC_NAME, task_metric


def task_cvs(cfg, examples) -> dict:
    """CV of a finished experiment on every task its head serves."""
    out = {}
    for t in HEADS[cfg.head].serves:
        train, test = task_rows(examples, t)
        oof, _ = load_member(cfg, train, test)
        out[t] = task_metric(t, train.merge(oof, on="example_id", validate="one_to_one"))
    return out


def main(argv):
    base = bench_config("table6", argv)
    train_and_score(base)
    examples = load_examples(base)
    train, test = experiment_rows(base, examples)
    oof, _ = load_member(base, train, test)
    report = clean(base, train, oof)
    cleaned = base.replace(name=f"{base.name}_clean", exclude_from=base.name)
    train_and_score(cleaned)
    without, with_ = task_cvs(base, examples), task_cvs(cleaned, examples)
    rows = [{"task": t, "metric": METRIC_NAME[t], "without": without[t], "with": with_[t],
             "change": with_[t] - without[t], "dropped": report["removed"],
             "flip_precision": report.get("precision", float("nan"))} for t in sorted(without)]
    table = pd.DataFrame(rows)
    write_table(base, table, "table6_cleaning")


if __name__ == "__main__":
    main(sys.argv[1:])
