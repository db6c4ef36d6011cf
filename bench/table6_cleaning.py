"""Paper Table 6 on our data: confident learning's effect on each task, with and without the cleaned rows.

Usage: python bench/table6_cleaning.py [configs...] [key=value ...]
       (default configs: configs/cpu.py configs/t2_a.py; e.g. add model_dir=tiny epochs=4 for a quick run)
The experiment is trained on every fold (finished folds are skipped), confident learning finds its label issues in
its OOF (esci.cleaning, clean_frac of the training rows), and the experiment is trained again without them as
<name>_clean. Both are scored on every task their head serves (a 4-class model: all three), over the task's rows:
validation keeps every row, the dropped ones included, as the test set would.
Out: output/<profile>/<encoder>/tables/table6_cleaning.csv (task, metric, CV without, with and the change, the same
on the test split where it has labels, rows dropped, and on the sample the share of dropped rows whose label the
generator flipped), printed too.
"""
import sys

import pandas as pd

from common import bench_config, task_scores, train_and_score, write_table
from esci.cleaning import clean
from esci.members import load_member
from esci.prepare import experiment_rows, load_examples
from esci.tasks import METRIC_NAME


def main(argv):
    base = bench_config("table6", argv, __doc__)
    train_and_score(base)
    examples = load_examples(base)
    train, test = experiment_rows(base, examples)
    oof, _ = load_member(base, train, test)
    report = clean(base, train, oof)
    cleaned = base.replace(name=f"{base.name}_clean", exclude_from=base.name)
    train_and_score(cleaned)
    without, with_ = task_scores(base, examples), task_scores(cleaned, examples)
    rows = [{"task": t, "metric": METRIC_NAME[t], "without": without[t][0], "with": with_[t][0],
             "change": with_[t][0] - without[t][0], "test_without": without[t][1], "test_with": with_[t][1],
             "test_change": with_[t][1] - without[t][1], "dropped": report["removed"],
             "flip_precision": report.get("precision", float("nan"))} for t in sorted(without)]
    table = pd.DataFrame(rows)
    write_table(base, table, "table6_cleaning")


if __name__ == "__main__":
    main(sys.argv[1:])
