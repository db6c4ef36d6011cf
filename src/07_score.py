"""Stage 7: score the task's submission on the labelled test split, as the official figures are computed.

Usage: python src/07_score.py configs/cpu.py configs/blend_t2.py
In: output/<profile>/<encoder>/submissions/task<k>.csv (stage 6) and output/<profile>/data/test_labels.parquet,
    the test labels the prepare stage kept apart (no earlier stage reads them).
Out: output/<profile>/<encoder>/<blend>/test_score.json and the figures printed beside the blend's CV: task 1 nDCG
     (intended gains, and the official scorer's with S and C swapped), tasks 2-3 micro-F1, each per locale (when
     the test split has no labels, as in the competition's files, it says so); then output/<profile>/results.csv
     (esci.results: every experiment and blend) rewritten and its rows for the task printed.
"""
from esci import results
from esci.cli import run_stage
from esci.io import read_json, write_json
from esci.prepare import load_examples, task_rows
from esci.submission import labelled_test, score, validate
from esci.tasks import METRIC_NAME


def main(cfg):
    _, test = task_rows(load_examples(cfg, subset=False), cfg.task)
    labelled = labelled_test(cfg, test)
    if labelled is not None:
        score_test(cfg, test, labelled)
    else:
        print(f"task {cfg.task}: the test split has no labels (no test_labels.parquet in {cfg.data_root}); "
              f"no test score")
    table = results.update(cfg)
    mine = table[table.encoder.eq(cfg.backbone) & table[f"cv_task{cfg.task}"].notna()].dropna(axis=1, how="all")
    print(f"results ({cfg.profile_dir / 'results.csv'}), task {cfg.task}:")
    print(mine.to_string(index=False))


def score_test(cfg, test, labelled):
    path = cfg.run_root / "submissions" / f"task{cfg.task}.csv"
    validate(cfg.task, path, test)
    result = score(cfg.task, path, labelled)
    metric = METRIC_NAME[cfg.task]
    cv = read_json(cfg.run_dir / "blend.json")[metric]
    write_json({"task": cfg.task, "submission": str(path), "test_rows": len(labelled), "cv": cv, "test": result},
               cfg.run_dir / "test_score.json")
    print(f"task {cfg.task} {metric}: CV {cv:.4f}, test {result[metric]:.4f} ({len(labelled)} labelled test rows; "
          + ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k != metric) + ")")


if __name__ == "__main__":
    run_stage("score", __doc__, main)
