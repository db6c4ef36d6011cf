"""Paper Table 3 on our data: the pre-training task ladder, each rung pre-trained and then fine-tuned on task 2.

Usage: python bench/table3_pretrain.py [configs...] [key=value ...]
       (default configs: configs/cpu.py configs/t2_a.py; e.g. add model_dir=tiny for a quick run)
Rungs are cumulative: none (the plain encoder), MLM, +Product2Query, +Product2Brand/Color, +Contrastive. Rung r
pre-trains output/<profile>/table3_pt_<r>/ and fine-tunes <name>_table3_<r> from it on every fold; finished work
is skipped on a rerun.
Out: output/<profile>/tables/table3_pretrain.csv: held-out MLM loss at the start and at the kept checkpoint,
held-out Product2Query / brand / color accuracies, and the task's CV metric; printed too.
"""
import sys

import pandas as pd

from common import bench_config, train_and_score, write_table
from esci.pretrain import pretrain
from esci.tasks import METRIC_NAME

OFF = dict(pt_mlm=False, pt_p2q=False, pt_brand=False, pt_color=False, pt_simcse=False)
RUNGS = [("none", None), ("mlm", dict(pt_mlm=True)), ("p2q", dict(pt_p2q=True)),
         ("brand_color", dict(pt_brand=True, pt_color=True)), ("contrastive", dict(pt_simcse=True))]


def main(argv):
    base = bench_config("table3", argv, __doc__)
    rows, switches = [], dict(OFF)
    for rung, change in RUNGS:
        row = {"rung": rung if rung in ("none", "mlm") else f"+{rung}"}
        init = ""
        if change is not None:
            switches.update(change)
            init = f"table3_pt_{rung}"
            m = pretrain(base.replace(**switches, name=init))
            row.update({"mlm_loss_start": m["start"].get("mlm_loss"), "mlm_loss": m["best"].get("mlm_loss"),
                        **{k: m["best"].get(k) for k in ("p2q_acc", "brand_acc", "color_acc")}})
        cfg = base.replace(init_from=init, name=f"{base.name}_table3_{rung}")
        row[METRIC_NAME[cfg.task]] = train_and_score(cfg)
        rows.append(row)
    table = pd.DataFrame(rows)
    write_table(base, table, "table3_pretrain")


if __name__ == "__main__":
    main(sys.argv[1:])
