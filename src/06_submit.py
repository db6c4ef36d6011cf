"""Stage 6: write the task's KDD Cup submission from a blend's test predictions and validate it.

Usage: python src/06_submit.py configs/cpu.py configs/blend_t2.py
In: the blend's test.parquet and blend.json (stage 5), the task's test rows.
Out: output/<profile>/submissions/task<k>.csv; prints its path and the blend's CV table.
"""
import pandas as pd

from esci import EsciError
from esci.cli import run_stage
from esci.io import read_json, read_parquet
from esci.prepare import load_examples, task_rows
from esci.submission import validate, write_task1, write_task2, write_task3
from esci.tasks import predicted_labels


def main(cfg):
    _, test = task_rows(load_examples(cfg, subset=False), cfg.task)  # a smoke run must not pass for a full one
    if not len(test):
        raise EsciError(f"{cfg.data_root}/examples.parquet: task {cfg.task} has no test rows, so there is nothing to "
                        f"submit; fix: use an examples file with split = 'test' rows (the CV is in {cfg.run_dir})")
    blend = read_json(cfg.run_dir / "blend.json")
    pred = test[["example_id", "query_id", "product_id"]].merge(read_parquet(cfg.run_dir / "test.parquet"),
                                                                 on="example_id", how="left", validate="one_to_one")
    missing = pred.drop(columns=["example_id", "query_id", "product_id"]).isna().any(axis=1)
    if missing.any():
        raise EsciError(f"{cfg.run_dir / 'test.parquet'}: no prediction for {int(missing.sum())} of {len(test)} test "
                        f"examples (first example_id {pred.example_id[missing].iloc[0]}); fix: blend experiments "
                        f"trained without max_test_rows")
    path = cfg.run_root / "submissions" / f"task{cfg.task}.csv"
    if cfg.task == 1:
        write_task1(pred, path)
    elif cfg.task == 2:
        write_task2(pred.assign(esci_label=predicted_labels(2, pred)), path)
    else:
        write_task3(pred.assign(substitute=predicted_labels(3, pred, blend["threshold"]).eq("S")), path)
    info = validate(cfg.task, path, test)
    print(f"task {cfg.task} submission: {path} ({info['rows']} rows, validated)")
    print(f"CV table: {cfg.run_dir / 'cv.csv'}")
    print(pd.read_csv(cfg.run_dir / "cv.csv").to_string(index=False))


if __name__ == "__main__":
    run_stage("submit", __doc__, main)
