"""One results table across experiments and blends: output/<profile>/results.csv.

In: the finished runs under output/<profile>/<encoder>/ (experiments' fold*/metrics.json and oof.parquet, blends'
blend.json, cv.csv and test_score.json) and the prepared examples.
Out: one row per experiment and per blend: kind, name, encoder, task, head or members, the CV on every task it
serves (over all its OOF rows of that task), the per-fold figures of its own task, the test figure when the test
split is labelled and the run was scored, training seconds (all folds), training examples/s, and the share of
unknown tokens per locale and field in its token store (where above 0). The scoring stage rewrites it and prints the
rows of its task.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .config import SHARED_DIRS
from .io import read_json, read_parquet, write_csv
from .prepare import task_rows
from .tasks import HEADS, METRIC_NAME, task_metric


def _experiment(run: Path, folds: list[Path], examples: pd.DataFrame) -> dict:
    metrics = [read_json(f) for f in folds]
    first = metrics[0]
    oof = pd.concat([read_parquet(f.parent / "oof.parquet") for f in folds if (f.parent / "oof.parquet").exists()])
    row = {"kind": "experiment", "name": run.name, "encoder": run.parent.name, "task": first["task"],
           "head": first["head"], "folds": len(metrics),
           "fold_cv": "/".join(f"{m.get(METRIC_NAME[first['task']], float('nan')):.4f}" for m in metrics),
           "train_s": round(sum(m.get("train_s", 0.0) for m in metrics), 1),
           "train_ex_per_s": round(sum(m.get("train_ex_per_s", 0.0) for m in metrics) / len(metrics), 1)}
    meta = run.parents[1] / "features" / str(first.get("stores", {}).get("tokens")) / "meta.json"
    if meta.exists():  # how much of the text the tokenizer read as its unknown token, where any
        row["unk_share"] = " ".join(f"{k}:{v:.3f}" for k, v in read_json(meta).get("unk_share", {}).items() if v)
    for t in HEADS[first["head"]].serves:
        train, _ = task_rows(examples, t)
        df = train.merge(oof, on="example_id", validate="one_to_one")
        if len(df) == len(train):  # its rows cover the task's
            row[f"cv_task{t}"] = round(task_metric(t, df), 4)
    return row


def _blend(run: Path) -> dict:
    info = read_json(run / "blend.json")
    metric = METRIC_NAME[info["task"]]
    stacked = "stack" in info  # LightGBM over the members: its CV; the weighted blend's beside it
    row = {"kind": "stack" if stacked else "blend", "name": run.name, "encoder": run.parent.name,
           "task": info["task"], "members": " ".join(f"{m}:{w:.2f}" for m, w in zip(info["members"], info["weights"]))
           + (f" (weighted blend {info['blend_' + metric]:.4f})" if stacked else ""),
           f"cv_task{info['task']}": round(info[metric], 4)}
    if (run / "test_score.json").exists():
        row["test"] = round(read_json(run / "test_score.json")["test"][metric], 4)
    return row


def collect(cfg) -> pd.DataFrame:
    examples = read_parquet(cfg.data_root / "examples.parquet")
    rows = []
    for encoder in sorted(d for d in cfg.profile_dir.iterdir() if d.is_dir() and d.name not in SHARED_DIRS):
        for run in sorted(d for d in encoder.iterdir() if d.is_dir()):
            folds = sorted(run.glob("fold[0-9]*/metrics.json"))
            if folds:
                rows.append(_experiment(run, folds, examples))
            elif (run / "blend.json").exists():
                rows.append(_blend(run))
    columns = ["kind", "name", "encoder", "task", "head", "members", "cv_task1", "cv_task2", "cv_task3", "test",
               "fold_cv", "folds", "train_s", "train_ex_per_s", "unk_share"]
    return pd.DataFrame(rows).reindex(columns=columns)


def update(cfg) -> pd.DataFrame:
    table = collect(cfg)
    write_csv(table, cfg.profile_dir / "results.csv")
    return table
