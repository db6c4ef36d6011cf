"""Paper Table 5 on our data: the fine-tuning trick ladder, each rung trained on every fold, CV in one table.

Usage: python bench/table5_tricks.py [configs...] [key=value ...]
       (default configs: configs/cpu.py configs/t2_a.py; e.g. add model_dir=tiny epochs=4 for a quick run)
Rungs are cumulative: base (no tricks), +EMA, +FGM, +R-Drop, +mixup. Each is an experiment named
<name>_tricks_<rung> under output/<profile>/, so a rerun skips finished folds.
Out: output/<profile>/<encoder>/tables/table5_tricks.csv: per rung the switches, the CV metric of the experiment's
task and its change against the previous rung, then CV and test (where the test split is labelled) on every task
the head serves (a 4-class model: all three); printed too.
"""
import sys

import pandas as pd

from common import bench_config, score_columns, train_and_score, write_table
from esci.prepare import load_examples
from esci.tasks import METRIC_NAME

RUNGS = [("base", dict(ema=False, fgm=False, rdrop=False, mixup=False)), ("ema", dict(ema=True)),
         ("fgm", dict(fgm=True)), ("rdrop", dict(rdrop=True)), ("mixup", dict(mixup=True))]


def main(argv):
    base = bench_config("table5", argv, __doc__)
    rows, switches = [], {}
    for rung, change in RUNGS:
        switches.update(change)
        cfg = base.replace(**switches, name=f"{base.name}_tricks_{rung}")
        rows.append({"rung": rung if rung == "base" else f"+{rung}", **{k: switches[k] for k in ("ema", "fgm", "rdrop",
                                                                                                  "mixup")},
                     METRIC_NAME[cfg.task]: train_and_score(cfg), **score_columns(cfg, load_examples(cfg))})
    table = pd.DataFrame(rows)
    table.insert(table.columns.get_loc(METRIC_NAME[base.task]) + 1, "change", table[METRIC_NAME[base.task]].diff())
    write_table(base, table, "table5_tricks")


if __name__ == "__main__":
    main(sys.argv[1:])
