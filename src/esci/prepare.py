"""Prepare stage: resolve the data directory, load and validate once, make the folds once, for every task.

In: config (data_dir, n_folds, seed, sample_if_missing, sample_queries, sample_noise).
Out: output/<profile>/data/
  examples.parquet    every judgement: example_id, query_id, query, product_id, product_locale, esci_label (null on
                      test rows), small_version, large_version, split, fold (-1 on test rows), qidx (row of its query
                      in the token and unit stores), pidx (row of its product in products.parquet)
  products.parquet    the catalog in the file's order, text cleaned: product_id, product_locale, title, brand,
                      color, bullets, description
  test_labels.parquet example_id, esci_label of test rows, when the data has them (kept apart from training)
  summary.json        what the tables were made from (data folder, content hashes) and their counts; written last,
                      so a rerun skips the stage and a crash leaves nothing a later stage reads
A task's rows are a view of examples.parquet (`task_rows`): task 1 the small version, tasks 2-3 the large one,
with the same fold for a query in every task. An experiment's rows (`experiment_rows`) are its `rows` version.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .data import FIX_DOWNLOAD, TEXT_FIELDS, DataError, has_esci_files, load_esci
from .folds import make_folds
from .io import read_json, write_json, write_parquet
from .sample import write_sample
from .tasks import TASKS

log = logging.getLogger("esci")

ROW_VERSIONS = {"small": ("small_version",), "large": ("large_version",), "all": ("small_version", "large_version")}


def resolve_data_dir(cfg) -> Path:
    """The ESCI folder to read; generates the embedded sample when allowed and no files are present."""
    data_dir = Path(cfg.data_dir)
    if has_esci_files(data_dir):
        return data_dir
    if not cfg.sample_if_missing:
        raise DataError(f"{data_dir}: no shopping_queries_dataset_*.parquet files; fix: {FIX_DOWNLOAD}")
    sample_dir = cfg.profile_dir / "sample_data"
    if not has_esci_files(sample_dir):
        info = write_sample(sample_dir, cfg.sample_queries, cfg.seed, cfg.sample_noise)
        print(f"no ESCI files in {data_dir}: generated the embedded sample ({info['queries']} queries, "
              f"{info['examples']} examples) in {sample_dir}", flush=True)
    return sample_dir


def column_hash(s: pd.Series) -> str:
    """Content hash of a column, from its Arrow buffers (no Python object per row)."""
    arr = pa.array(s, from_pandas=True)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    h = hashlib.sha1(str(arr.type).encode())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pa.concat_arrays([arr])  # a fresh array starting at offset 0
    for buf in arr.buffers():
        if buf is not None:
            h.update(memoryview(buf))
    return h.hexdigest()[:16]


def prepare(cfg) -> Path:
    out = cfg.data_root
    if (out / "summary.json").exists():
        check_prepared(cfg)
        log.info("prepared tables in %s are complete; skipping", out)
        return out
    data_dir = resolve_data_dir(cfg)
    examples, products = load_esci(data_dir)
    products = products.rename(columns={v: k for k, v in TEXT_FIELDS.items()})
    train = examples.split.eq("train")
    folds = make_folds(examples[train], cfg.n_folds, cfg.seed)
    examples = examples.merge(folds, on="query_id", how="left", validate="many_to_one")
    examples["fold"] = examples.fold.fillna(-1).astype(np.int64)
    qid = np.unique(examples.query_id.to_numpy())
    examples["qidx"] = np.searchsorted(qid, examples.query_id.to_numpy()).astype(np.int64)
    test = ~train.to_numpy()
    labels = examples.loc[test & examples.esci_label.notna().to_numpy(), ["example_id", "esci_label"]]
    examples["esci_label"] = examples.esci_label.where(train)
    if len(labels):
        write_parquet(labels.reset_index(drop=True), out / "test_labels.parquet")
    write_parquet(products, out / "products.parquet")
    write_parquet(examples, out / "examples.parquet")
    queries = examples.drop_duplicates("qidx").sort_values("qidx")
    summary = dict(data_dir=str(data_dir), n_folds=cfg.n_folds, seed=cfg.seed, examples=len(examples),
                   products=len(products), queries=len(qid), test_labels=len(labels),
                   hashes={"query": column_hash(queries["query"]), "query_locale": column_hash(queries.product_locale),
                           **{f: column_hash(products[f]) for f in (*TEXT_FIELDS, "product_locale")}},
                   tasks={t: task_summary(examples, t) for t in TASKS})
    write_json(summary, out / "summary.json")
    log.info("prepared %s: %d examples, %d products, %d queries; %s", out, len(examples), len(products), len(qid),
             {t: (s["train_rows"], s["test_rows"]) for t, s in summary["tasks"].items()})
    return out


def task_summary(examples: pd.DataFrame, task: int) -> dict:
    rows = examples[examples[TASKS[task].version].eq(1)]
    train = rows[rows.split.eq("train")]
    return dict(train_rows=len(train), test_rows=int(rows.split.eq("test").sum()),
                train_queries=int(train.query_id.nunique()), labels=train.esci_label.value_counts().to_dict(),
                fold_rows=train.fold.value_counts().sort_index().tolist())


def check_prepared(cfg) -> dict:
    """The summary of the prepared tables, after checking they exist and match the config."""
    path = cfg.data_root / "summary.json"
    if not path.exists():
        raise DataError(f"{path}: prepared tables missing; fix: run src/01_prepare.py first")
    summary = read_json(path)
    source = Path(cfg.data_dir) if has_esci_files(cfg.data_dir) or not cfg.sample_if_missing else \
        cfg.profile_dir / "sample_data"
    if summary["data_dir"] != str(source):
        raise DataError(f"{cfg.data_root}: prepared from {summary['data_dir']}, but the config reads {source}; fix: "
                        f"another OUTPUT_DIR (or PROFILE) for other data, or delete {cfg.data_root} to remake it")
    if summary["n_folds"] != cfg.n_folds or summary["seed"] != cfg.seed:
        raise DataError(f"{cfg.data_root}: folds were made with n_folds={summary['n_folds']}, seed={summary['seed']}; "
                        f"the config says n_folds={cfg.n_folds}, seed={cfg.seed}; fix: use those values, or another "
                        f"OUTPUT_DIR for the new ones")
    return summary


def first_queries(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """The rows of the n lowest query ids (the smoke-test limit max_train_queries)."""
    return df[df.query_id.isin(np.sort(df.query_id.unique())[:n])].reset_index(drop=True)


def load_examples(cfg, subset: bool = True) -> pd.DataFrame:
    """Every prepared judgement. With `subset`, the smoke-test limits apply to the whole data set (so that every
    task and experiment sees the same rows): max_train_queries keeps the first training queries by id,
    max_test_rows the first test rows by example_id."""
    check_prepared(cfg)
    ex = pd.read_parquet(cfg.data_root / "examples.parquet")
    if subset and (cfg.max_train_queries or cfg.max_test_rows):
        train, test = ex[ex.split.eq("train")], ex[ex.split.eq("test")]
        if cfg.max_train_queries:
            train = first_queries(train, cfg.max_train_queries)
        if cfg.max_test_rows:
            test = test.sort_values("example_id").iloc[:cfg.max_test_rows]
        ex = pd.concat([train, test]).sort_values("example_id").reset_index(drop=True)
    return ex


def load_products(cfg, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(cfg.data_root / "products.parquet", columns=columns)


def _split(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = rows[rows.split.eq("train")].reset_index(drop=True)
    return train, rows[rows.split.eq("test")].drop(columns=["esci_label"]).reset_index(drop=True)


def task_rows(examples: pd.DataFrame, task: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) rows a task scores: its version's judgements, labelled training rows with their fold."""
    return _split(examples[examples[TASKS[task].version].eq(1)])


def experiment_rows(cfg, examples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) rows an experiment trains, validates and predicts: its `rows` version(s), with `weight`
    aug_weight on rows outside its task's version (e.g. task 1 trained on the large version)."""
    if cfg.rows not in ROW_VERSIONS:
        raise ValueError(f"config key 'rows' is {cfg.rows!r}; fix: use one of {', '.join(ROW_VERSIONS)}")
    keep = np.zeros(len(examples), bool)
    for version in ROW_VERSIONS[cfg.rows]:
        keep |= examples[version].eq(1).to_numpy()
    rows = examples[keep]
    in_task = rows[TASKS[cfg.task].version].eq(1)
    rows = rows.assign(weight=np.where(in_task, 1.0, float(cfg.aug_weight)).astype(np.float32))
    return _split(rows)


def with_text(cfg, rows: pd.DataFrame, fields: list[str] = ("title", "brand", "color")) -> pd.DataFrame:
    """rows with their products' text columns (for baselines and notebooks; training reads the feature stores)."""
    text = load_products(cfg, list(fields)).iloc[rows.pidx.to_numpy()].reset_index(drop=True)
    return pd.concat([rows.reset_index(drop=True), text], axis=1)
