"""Prepare stage: resolve the data directory, load and validate, build one task's tables and its folds, once.

In: config (data_dir, task, n_folds, seed, add_task1_rows, sample_if_missing).
Out: output/<profile>/data/task<k>/{train.parquet, test.parquet, folds.parquet, summary.json}, and for task 1
extra.parquet (the large version's other training rows, see `fit_rows`); summary.json is written last and marks
the stage complete, so a rerun skips it and a crash leaves nothing a later stage reads.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .data import FIX_DOWNLOAD, DataError, has_esci_files, load_esci, task_tables
from .folds import attach_folds, make_folds
from .io import read_json, write_json, write_parquet
from .sample import write_sample

log = logging.getLogger("esci")


def resolve_data_dir(cfg) -> Path:
    """The ESCI folder to read; generates the embedded sample when allowed and no files are present."""
    data_dir = Path(cfg.data_dir)
    if has_esci_files(data_dir):
        return data_dir
    if not cfg.sample_if_missing:
        raise DataError(f"{data_dir}: no shopping_queries_dataset_*.parquet files; fix: {FIX_DOWNLOAD}")
    sample_dir = Path(cfg.output_dir) / cfg.profile / "sample_data"
    if not has_esci_files(sample_dir):
        info = write_sample(sample_dir, cfg.sample_queries, cfg.seed, cfg.sample_noise)
        print(f"no ESCI files in {data_dir}: generated the embedded sample ({info['queries']} queries, "
              f"{info['examples']} examples) in {sample_dir}", flush=True)
    return sample_dir


def prepare(cfg) -> Path:
    out = cfg.prep_dir
    if (out / "summary.json").exists():
        log.info("prepared tables in %s are complete; skipping", out)
        return out
    data_dir = resolve_data_dir(cfg)
    examples, products = load_esci(data_dir)
    train, test = task_tables(examples, products, cfg.task, cfg.add_task1_rows, cfg.aug_weight)
    folds = make_folds(train, cfg.n_folds, cfg.seed)
    if cfg.task == 1:
        large, _ = task_tables(examples, products, 2)
        extra = large[~large.example_id.isin(train.example_id)].merge(folds, on="query_id", how="left")
        extra["fold"] = extra.fold.fillna(-1).astype("int64")  # -1: a query task 1 never validates
        write_parquet(extra.reset_index(drop=True), out / "extra.parquet")
    write_parquet(train, out / "train.parquet")
    write_parquet(test, out / "test.parquet")
    write_parquet(folds, out / "folds.parquet")
    summary = dict(data_dir=str(data_dir), task=cfg.task, train_rows=len(train), test_rows=len(test),
                   train_queries=int(train.query_id.nunique()),
                   extra_rows=len(extra) if cfg.task == 1 else 0, n_folds=cfg.n_folds, seed=cfg.seed,
                   labels=train.esci_label.value_counts().to_dict(),
                   fold_rows=attach_folds(train, folds).fold.value_counts().sort_index().tolist())
    write_json(summary, out / "summary.json")
    log.info("task %d prepared in %s: %s", cfg.task, out, summary)
    return out


def first_queries(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """The rows of the n lowest query ids (the smoke-test limit max_train_queries)."""
    return df[df.query_id.isin(np.sort(df.query_id.unique())[:n])].reset_index(drop=True)


def load_prepared(cfg, subset: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train with `fold`, test) from the prepare stage; fails if it has not run. With `subset`, the smoke-test
    limits apply (max_train_queries: the first queries by id; max_test_rows: the first test rows)."""
    out = cfg.prep_dir
    if not (out / "summary.json").exists():
        raise FileNotFoundError(f"{out}/summary.json: prepared tables missing; fix: run src/01_prepare.py first")
    summary = read_json(out / "summary.json")
    if summary["n_folds"] != cfg.n_folds:
        raise ValueError(f"{out}: folds were made with n_folds={summary['n_folds']}, config says {cfg.n_folds}; "
                         f"fix: use the same n_folds or delete {out} to remake them")
    train = attach_folds(pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "folds.parquet"))
    test = pd.read_parquet(out / "test.parquet")
    if subset and cfg.max_train_queries:
        train = first_queries(train, cfg.max_train_queries)
    if subset and cfg.max_test_rows:
        test = test.iloc[:cfg.max_test_rows].reset_index(drop=True)
    return train, test


def fit_rows(cfg, train: pd.DataFrame, fold: int) -> pd.DataFrame:
    """The rows that train fold `fold` (-1 = full fit): the other folds' rows and, for task 1 with add_large_rows,
    the large version's training rows outside the small version at weight aug_weight. Those are never validated
    or scored; rows of a query task 1 validates on fold k stay out of fold k's training."""
    fit = train[train.fold != fold]
    if not (cfg.add_large_rows and cfg.task == 1):
        return fit.reset_index(drop=True)
    path = cfg.prep_dir / "extra.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (tables prepared by an older version); fix: delete "
                                f"{cfg.prep_dir} and rerun src/01_prepare.py")
    extra = pd.read_parquet(path)
    if cfg.max_train_queries:
        extra = first_queries(extra, cfg.max_train_queries)
    extra = extra[extra.fold.ne(fold) | (fold < 0)].assign(weight=float(cfg.aug_weight))
    return pd.concat([fit, extra[fit.columns]], ignore_index=True)
