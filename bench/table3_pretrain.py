"""Paper Table 3 on our data: the pre-training task ladder, each rung pre-trained and then fine-tuned on task 2.

Usage: python bench/table3_pretrain.py [configs...] [key=value ...]
       (default configs: configs/cpu.py configs/t2_a.py; e.g. add model_dir=tiny for a quick run)
Rungs are cumulative: none (the plain encoder), MLM, +Product2Query, +Product2Brand/Color, +Contrastive. Rung r
pre-trains output/<profile>/<encoder>/table3_pt_<r>/ and fine-tunes <name>_table3_<r> from it on every fold;
finished work is skipped on a rerun. A catalog with no brand or color value seen twice (titles only, say) has
nothing for the brand/color rung to learn: the command says so and skips it (its row is empty).
Out: output/<profile>/<encoder>/tables/table3_pretrain.csv: held-out MLM loss at the start and at the kept
checkpoint, held-out Product2Query / brand / color accuracies, pre-training steps and seconds, the CV metric of the
experiment's task, then CV and test (where the test split is labelled) on every task the head serves; printed too.
"""
import sys

import pandas as pd

from common import bench_config, score_columns, train_and_score, write_table
from esci.features import norm_value
from esci.prepare import load_examples, load_products, prepare
from esci.pretrain import pretrain
from esci.tasks import METRIC_NAME

OFF = dict(pt_mlm=False, pt_p2q=False, pt_brand=False, pt_color=False, pt_simcse=False)
RUNGS = [("none", None), ("mlm", dict(pt_mlm=True)), ("p2q", dict(pt_p2q=True)),
         ("brand_color", dict(pt_brand=True, pt_color=True)), ("contrastive", dict(pt_simcse=True))]


def has_attributes(cfg) -> bool:
    """Whether any brand or color value appears twice in the catalog (else Product2Brand/Color has no class)."""
    products = load_products(cfg, ["brand", "color"])
    values = [norm_value(products[c]) for c in ("brand", "color")]
    return any(v[v.fillna("").ne("")].value_counts().gt(1).any() for v in values)


def main(argv):
    base = bench_config("table3", argv, __doc__)
    prepare(base)
    rows, switches = [], dict(OFF)
    for rung, change in RUNGS:
        row = {"rung": rung if rung in ("none", "mlm") else f"+{rung}"}
        init = ""
        if rung == "brand_color" and not has_attributes(base):
            print("+brand_color: skipped: no brand or color value appears twice in this catalog, so Product2Brand "
                  "and Product2Color have nothing to learn (the next rung goes on from +p2q)")
            rows.append(row)
            continue
        if change is not None:
            switches.update(change)
            init = f"table3_pt_{rung}"
            m = pretrain(base.replace(**switches, name=init))
            row.update({"mlm_loss_start": m["start"].get("mlm_loss"), "mlm_loss": m["best"].get("mlm_loss"),
                        **{k: m["best"].get(k) for k in ("p2q_acc", "brand_acc", "color_acc")},
                        "pt_steps": m["steps"], "pt_s": m.get("train_s")})
        cfg = base.replace(init_from=init, name=f"{base.name}_table3_{rung}")
        row[METRIC_NAME[cfg.task]] = train_and_score(cfg)
        row.update(score_columns(cfg, load_examples(cfg)))
        rows.append(row)
    table = pd.DataFrame(rows)
    write_table(base, table, "table3_pretrain")


if __name__ == "__main__":
    main(sys.argv[1:])
