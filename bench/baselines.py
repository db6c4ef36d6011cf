"""The fine-tuned models against simple baselines, computed in the same run on the same folds.

Usage: python bench/baselines.py [configs...] [key=value ...]   (default configs/sample.py configs/t2_a.py)
       python bench/baselines.py configs/sample.py configs/t1_a.py
Task 2/3: majority class and TF-IDF + logistic regression (OOF micro-F1). Task 1: TF-IDF cosine and the zero-shot
MiniLM bi-encoder (nDCG). Beside them: the CV of every finished experiment and blend of the task found under
output/<profile>/ (run the task's driver first).
Out: output/<profile>/tables/baselines_task<k>.csv, printed too.
"""
import sys

import pandas as pd

from esci import baselines
from esci.config import from_argv
from esci.io import read_json, write_csv
from esci.log import setup
from esci.prepare import load_examples, prepare, task_rows, with_text
from esci.tasks import METRIC_NAME


def main(argv):
    setup("baselines")
    files = [a for a in argv if "=" not in a] or ["configs/sample.py", "configs/t2_a.py"]
    cfg = from_argv(files + [a for a in argv if "=" in a])
    prepare(cfg)
    train = with_text(cfg, task_rows(load_examples(cfg), cfg.task)[0])
    metric = METRIC_NAME[cfg.task]
    if cfg.task == 1:
        rows = [("baseline", "tfidf_cosine", baselines.tfidf_cosine(train)),
                ("baseline", "minilm_biencoder_zero_shot", baselines.biencoder(train))]
    else:
        rows = [("baseline", "majority", baselines.majority(cfg.task, train)),
                ("baseline", "tfidf_lr", baselines.tfidf_lr(cfg.task, train, cfg.seed))]
    root = cfg.run_dir.parent
    for cv in sorted(root.glob("*/cv.csv")):
        table = pd.read_csv(cv)
        if read_json(cv.parent / "blend.json")["task"] == cfg.task:
            rows += [("fine-tuned", f"{r.member}" + ("" if r.member != "blend" else f" ({cv.parent.name})"),
                      r[metric]) for _, r in table.iterrows()]
    table = pd.DataFrame(rows, columns=["kind", "model", metric])
    out = root / "tables" / f"baselines_task{cfg.task}.csv"
    write_csv(table, out)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"table: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
