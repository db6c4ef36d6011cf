"""Prepare stage: resolve the data directory, load and validate once, make the folds once, for every task.

In: config (data_dir, n_folds, seed, sample_if_missing, sample_queries, sample_noise); data_dir="sample" (or
DATA_DIR=sample) asks for the embedded sample, which is also used when the default input/ holds no ESCI file under
a profile that allows it (the CPU profile); any other folder must hold the files.
Out: output/<profile>/data/
  examples.parquet    every judgement: example_id, query_id, query, product_id, product_locale, esci_label (null on
                      test rows), small_version, large_version, split, fold (-1 on test rows), qidx (row of its query
                      in the token and unit stores), pidx (row of its product in products.parquet)
  products.parquet    the catalog in the file's order, text cleaned: product_id, product_locale, title, brand,
                      color, bullets, description
  test_labels.parquet example_id, esci_label of test rows, when the data has them (kept apart from training)
  summary.json        what the tables were made from (data folder, content hashes), their counts and each table's size
                      and digest (a damaged table is made again by a rerun, refused by the other stages); written
                      last, so a rerun skips the stage and a crash leaves nothing a later stage reads
A task's rows are a view of examples.parquet (`task_rows`): task 1 the small version, tasks 2-3 the large one,
with the same fold for a query in every task. An experiment's rows (`experiment_rows`) are its `rows` version.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from . import EsciError
from .config import ROOT
from .data import EXAMPLES, PRODUCTS, SOURCES, TEXT_FIELDS, DataError, has_esci_files, load_esci
from .folds import make_folds
from .io import changed, exclusive, file_digests, read_json, read_parquet, write_json, write_parquet
from .provenance import describe, file_digest, fingerprint
from .sample import write_sample
from .tasks import TASKS

log = logging.getLogger("esci")
_budget_told: set = set()   # (data root, max_train_queries) pairs whose budget warning this process has given

ROW_VERSIONS = {"small": ("small_version",), "large": ("large_version",), "all": ("small_version", "large_version")}


def source_dir(cfg) -> Path:
    """The folder the tables come from: the embedded sample (output/<profile>/sample_data) when data_dir is
    "sample", or when it is the default input/ holding no ESCI file under a profile with sample_if_missing;
    else data_dir itself (a missing file there is an error that names it, never a silent switch to the sample)."""
    data_dir = Path(cfg.data_dir)
    default = data_dir == ROOT / "input"
    if cfg.data_dir == "sample" or (cfg.sample_if_missing and default and
                                    not any((data_dir / f).exists() for f in (EXAMPLES, PRODUCTS))):
        return cfg.profile_dir / "sample_data"
    return data_dir


def resolve_data_dir(cfg) -> Path:
    """source_dir, with the embedded sample generated there when it is the sample and not written yet."""
    data_dir = source_dir(cfg)
    if data_dir == cfg.profile_dir / "sample_data" and not has_esci_files(data_dir):
        info = write_sample(data_dir, cfg.sample_queries, cfg.seed, cfg.sample_noise)
        print(f"generated the embedded sample ({info['queries']} queries, {info['examples']} examples) in "
              f"{data_dir}", flush=True)
    return data_dir


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


def file_stats(source: Path) -> dict:
    """Size and modification time of each ESCI file in source: when both are unchanged since prepare, the content
    digest recorded then is reused instead of reading the files again."""
    return {f: [(source / f).stat().st_size, (source / f).stat().st_mtime_ns]
            for f in (EXAMPLES, PRODUCTS, SOURCES) if (source / f).exists()}


def prepare_fingerprint(cfg, known: dict | None = None) -> dict:
    """The prepared tables are made from: the source folder's files (size and content digest, so a copied or
    touched file with the same bytes is the same input) or the sample's settings, and the fold settings.
    known: a summary.json written earlier, whose digests stand for files whose size and mtime still match."""
    source = source_dir(cfg)
    if source == cfg.profile_dir / "sample_data":
        files = {"sample": [cfg.sample_queries, cfg.seed, cfg.sample_noise]}
    else:
        stats, known = file_stats(source), known or {}
        old_stats, old_files = known.get("file_stats", {}), known.get("fingerprint", {}).get("inputs", {}).get(
            "files", {})
        # an entry made when the file had this size and mtime stands (a digest, or the stats themselves as
        # tables prepared before digests recorded them)
        files = {f: old_files[f] if f in old_files and st in (old_stats.get(f), old_files[f])
                 else [st[0], file_digest(source / f)] for f, st in stats.items()}
    return fingerprint(cfg, ["n_folds", "seed"], source=str(source), files=files)


def prepare(cfg) -> Path:
    """Make the prepared tables, or check the ones there; one process at a time (every rank of a distributed launch
    calls it; the first makes the tables, the others find them complete)."""
    with exclusive(cfg.profile_dir / ".prepare.lock"):
        return _prepare(cfg)


def _prepare(cfg) -> Path:
    out = cfg.data_root
    if (out / "summary.json").exists():
        try:
            summary = check_prepared(cfg, verify=False)
            problem = changed(out, summary.get("tables"))
            if problem is None:
                log.info("prepared tables in %s are complete; skipping", out)
                return out
            log.warning("%s: damaged (%s); preparing again", out, problem)
        except EsciError:
            if not cfg.force:
                raise
            print(f"{out}: made from other inputs; force=True: preparing again", flush=True)
        shutil.rmtree(out)
    data_dir = resolve_data_dir(cfg)
    made_from, stats = prepare_fingerprint(cfg), file_stats(data_dir)
    examples, products = load_esci(data_dir)
    if file_stats(data_dir) != stats:
        raise DataError(f"{data_dir}: an ESCI file changed while it was being read; fix: prepare again once the "
                        f"files are complete")
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
    write_parquet(products, out / "products.parquet", row_group_size=100_000)
    write_parquet(examples, out / "examples.parquet")
    queries = examples.drop_duplicates("qidx").sort_values("qidx")
    summary = dict(data_dir=str(data_dir), n_folds=cfg.n_folds, seed=cfg.seed, examples=len(examples),
                   fingerprint=made_from, file_stats=stats,
                   products=len(products), queries=len(qid), test_labels=len(labels),
                   hashes={"query": column_hash(queries["query"]), "query_locale": column_hash(queries.product_locale),
                           **{f: column_hash(products[f]) for f in (*TEXT_FIELDS, "product_locale")}},
                   tasks={t: task_summary(examples, t) for t in TASKS}, tables=file_digests(out, "*.parquet"))
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


def check_prepared(cfg, verify: bool = True) -> dict:
    """The summary of the prepared tables, after checking they exist, match the config and (verify) are not
    damaged: each table's size and the digest of its first and last MiB as written."""
    path = cfg.data_root / "summary.json"
    if not path.exists():
        raise DataError(f"{path}: prepared tables missing; fix: run src/01_prepare.py first")
    summary = read_json(path)
    source = source_dir(cfg)
    known = has_esci_files(source) or source == cfg.profile_dir / "sample_data"
    fp = prepare_fingerprint(cfg, summary) if known else None
    if summary.get("fingerprint") != fp:
        what = describe(summary.get("fingerprint", {}), fp) if fp else f"no ESCI files in {source}"
        raise EsciError(f"{cfg.data_root}: prepared from other inputs ({what}); fix: another OUTPUT_DIR (or PROFILE) "
                        f"for other data or settings, or prepare again with --force (then retrain with --force)")
    problem = changed(cfg.data_root, summary.get("tables")) if verify else None
    if problem:
        raise EsciError(f"{cfg.data_root}: prepared tables damaged ({problem}); fix: run src/01_prepare.py again "
                        f"(it makes them again from the same files)")
    return summary


def first_queries(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """The rows of the n lowest query ids (the smoke-test limit max_train_queries)."""
    return df[df.query_id.isin(np.sort(df.query_id.unique())[:n])].reset_index(drop=True)


def load_examples(cfg, subset: bool = True) -> pd.DataFrame:
    """Every prepared judgement. With `subset`, the smoke-test limits apply to the whole data set (so that every
    task and experiment sees the same rows): max_train_queries keeps the first training queries by id,
    max_test_rows the first test rows by example_id."""
    check_prepared(cfg)
    ex = read_parquet(cfg.data_root / "examples.parquet")
    if subset and (cfg.max_train_queries or cfg.max_test_rows):
        train, test = ex[ex.split.eq("train")], ex[ex.split.eq("test")]
        if cfg.max_train_queries:
            n, rows = train.query_id.nunique(), len(train)
            train = first_queries(train, cfg.max_train_queries)
            told = (str(cfg.data_root), cfg.max_train_queries)
            if n > cfg.max_train_queries and told not in _budget_told:
                _budget_told.add(told)
                log.warning("max_train_queries=%d: training on the first %d of %d training queries (%d of %d "
                            "rows); max_train_queries=0 for all", cfg.max_train_queries, cfg.max_train_queries,
                            n, len(train), rows)
        if cfg.max_test_rows:
            test = test.sort_values("example_id").iloc[:cfg.max_test_rows]
        ex = pd.concat([train, test]).sort_values("example_id").reset_index(drop=True)
    return ex


def filled(cfg, fields: list[str]) -> list[str]:
    """The product fields, in order, that hold some text in the prepared catalog (from the summary's content hashes:
    a field empty in every product has the hash of that many empty strings)."""
    summary = check_prepared(cfg, verify=False)
    return [f for f in fields if summary["hashes"][f] != _empty_hash(summary["products"])]


@functools.lru_cache(maxsize=8)
def _empty_hash(n: int) -> str:
    return column_hash(pd.Series([""] * n, dtype=object))


def load_products(cfg, columns: list[str] | None = None) -> pd.DataFrame:
    return read_parquet(cfg.data_root / "products.parquet", columns=columns)


def _split(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = rows[rows.split.eq("train")].reset_index(drop=True)
    return train, rows[rows.split.eq("test")].drop(columns=["esci_label"]).reset_index(drop=True)


def _no_rows(version: str, what: str) -> EsciError:
    return EsciError(f"examples.parquet: no training rows with {version} = 1 ({what}); fix: mark the rows with "
                     f"{version} = 1 in the examples file, or choose another task or rows setting")


def task_rows(examples: pd.DataFrame, task: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) rows a task scores: its version's judgements, labelled training rows with their fold."""
    train, test = _split(examples[examples[TASKS[task].version].eq(1)])
    if not len(train):
        raise _no_rows(TASKS[task].version, f"task {task}")
    return train, test


def experiment_rows(cfg, examples: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) rows an experiment trains, validates and predicts: its `rows` version(s), with `weight`
    aug_weight on rows outside its task's version (e.g. task 1 trained on the large version)."""
    if cfg.rows not in ROW_VERSIONS:
        raise EsciError(f"config key 'rows' is {cfg.rows!r}; fix: use one of {', '.join(ROW_VERSIONS)}")
    keep = np.zeros(len(examples), bool)
    for version in ROW_VERSIONS[cfg.rows]:
        keep |= examples[version].eq(1).to_numpy()
    rows = examples[keep]
    if not rows.split.eq("train").any():
        raise _no_rows(" or ".join(ROW_VERSIONS[cfg.rows]), f"rows={cfg.rows}")
    in_task = rows[TASKS[cfg.task].version].eq(1)
    rows = rows.assign(weight=np.where(in_task, 1.0, float(cfg.aug_weight)).astype(np.float32))
    return _split(rows)


def with_text(cfg, rows: pd.DataFrame, fields: list[str] = ("title", "brand", "color")) -> pd.DataFrame:
    """rows with their products' text columns (for baselines and notebooks; training reads the feature stores)."""
    text = load_products(cfg, list(fields)).iloc[rows.pidx.to_numpy()].reset_index(drop=True)
    return pd.concat([rows.reset_index(drop=True), text], axis=1)
