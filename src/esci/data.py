"""ESCI data layer: read, validate, clean and join the Shopping Queries files.

In: a data directory holding `shopping_queries_dataset_examples.parquet`, `shopping_queries_dataset_products.parquet`
and optionally `shopping_queries_dataset_sources.csv` (the public release's schema).
Out: `load_esci()` -> (examples, products): validated frames; products keep the file's order, their text cleaned
(HTML stripped, whitespace folded, missing -> ""), and every example carries `pidx`, the row of its product
(joined on (product_locale, product_id)). Text is cleaned with Arrow kernels over whole columns, so loading the
release (2.6M judgements, 1.8M products) holds no Python object per row.
Every problem raises `DataError` with one line naming the file, the column or row, and the fix.
"""
from __future__ import annotations

import html
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import LABELS, LOCALES, EsciError

log = logging.getLogger("esci")

EXAMPLES = "shopping_queries_dataset_examples.parquet"
PRODUCTS = "shopping_queries_dataset_products.parquet"
SOURCES = "shopping_queries_dataset_sources.csv"

EXAMPLE_COLUMNS = {"example_id": "int", "query": "str", "query_id": "int", "product_id": "str",
                   "product_locale": "str", "esci_label": "str", "small_version": "int",
                   "large_version": "int", "split": "str"}
PRODUCT_COLUMNS = {"product_id": "str", "product_title": "str", "product_description": "str",
                   "product_bullet_point": "str", "product_brand": "str", "product_color": "str",
                   "product_locale": "str"}
TEXT_FIELDS = {"title": "product_title", "brand": "product_brand", "color": "product_color",
               "bullets": "product_bullet_point", "description": "product_description"}
FIX_DOWNLOAD = ("download the files as input/README.md says, or set DATA_DIR to the folder holding them "
                "(DATA_DIR=sample: the embedded sample)")


class DataError(EsciError):
    """Bad input: the message is one line naming the file, the column or row, and the fix."""


def has_esci_files(data_dir: str | Path) -> bool:
    return (Path(data_dir) / EXAMPLES).exists() and (Path(data_dir) / PRODUCTS).exists()


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: file not found; fix: {FIX_DOWNLOAD}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; fix: download it again ({FIX_DOWNLOAD})")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable parquet file ({type(e).__name__}); fix: download it again, "
                        f"a Git LFS pointer instead of the file means `git lfs pull` was not run") from None
    if len(df) == 0:
        raise DataError(f"{path}: file has no rows; fix: {FIX_DOWNLOAD}")
    return df


def _check_columns(df: pd.DataFrame, spec: dict, path: Path) -> None:
    for col, kind in spec.items():
        if col not in df.columns:
            raise DataError(f"{path}: column '{col}' is missing (has {', '.join(map(str, df.columns))}); "
                            f"fix: use the public ESCI release, whose schema has {', '.join(spec)}")
        s = df[col]
        if kind == "int":
            ok = pd.api.types.is_integer_dtype(s)
            want = "integers"
        else:
            ok = pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s)
            if ok and pd.api.types.is_object_dtype(s):
                ok = s.dropna().map(type).eq(str).all()
            want = "strings"
        if not ok:
            raise DataError(f"{path}: column '{col}' has dtype {s.dtype}, expected {want}; "
                            f"fix: write the column as {want} (the public release's schema)")
        if kind == "int" and s.isna().any():
            raise DataError(f"{path}: column '{col}' has missing values at row {int(np.flatnonzero(s.isna())[0])}; "
                            f"fix: every row needs a {col}")


def _first_bad_row(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def validate_examples(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    _check_columns(df, EXAMPLE_COLUMNS, path)
    df = df[list(EXAMPLE_COLUMNS)].copy()
    for col in ("query", "product_id", "product_locale", "split"):
        bad = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if bad.any():
            r = _first_bad_row(bad)
            raise DataError(f"{path}: column '{col}' is empty at row {r} (example_id {df.example_id.iat[r]}); "
                            f"fix: fill it or remove the row")
    labelled = df.split.eq("train")
    bad = ~df.esci_label.isin(LABELS) & (labelled | df.esci_label.notna())
    if bad.any():
        r = _first_bad_row(bad)
        raise DataError(f"{path}: column 'esci_label' has unknown value {df.esci_label.iat[r]!r} at row {r}; "
                        f"fix: use one of {', '.join(LABELS)}")
    bad = ~df.split.isin(["train", "test"])
    if bad.any():
        r = _first_bad_row(bad)
        raise DataError(f"{path}: column 'split' has unknown value {df.split.iat[r]!r} at row {r}; "
                        f"fix: use 'train' or 'test'")
    for col in ("small_version", "large_version"):
        bad = ~df[col].isin([0, 1])
        if bad.any():
            r = _first_bad_row(bad)
            raise DataError(f"{path}: column '{col}' has value {df[col].iat[r]} at row {r}; fix: use 0 or 1")
    dup = df.example_id.duplicated()
    if dup.any():
        r = _first_bad_row(dup)
        raise DataError(f"{path}: column 'example_id' repeats value {df.example_id.iat[r]} at row {r}; "
                        f"fix: example_id must be unique, remove the duplicate row")
    dup = df.duplicated(["query_id", "product_id"])
    if dup.any():
        r = _first_bad_row(dup)
        raise DataError(f"{path}: row {r} repeats the (query_id, product_id) pair ({df.query_id.iat[r]}, "
                        f"{df.product_id.iat[r]}); fix: judge each product once per query")
    _warn_examples(df, path)
    per_query = df[["query_id", "query", "product_locale", "split"]].drop_duplicates()
    for cols, what in ((["query_id", "query"], "two texts"), (["query_id", "product_locale"], "two locales"),
                       (["query_id", "split"], "rows in both splits")):
        dup = per_query.drop_duplicates(cols).query_id.duplicated()
        if dup.any():
            q = per_query.drop_duplicates(cols).query_id[dup].iat[0]
            raise DataError(f"{path}: query_id {q} has {what}; fix: one text, one locale and one split per "
                            f"query_id (give the other a new query_id)")
    return df


_BREAKS = r"(?i)<\s*br\s*/?\s*>|</\s*(p|li|div)\s*>"
_TAGS = r"<[^>]{0,500}>"
# Python's \s on str: RE2's \s misses \v and the Unicode spaces
_SPACES = r"[\s\x{0b}\x{1c}-\x{1f}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+"


def _warn_examples(df: pd.DataFrame, path: Path) -> None:
    """What is odd but usable gets a counted warning."""
    train = df.split.eq("train")
    if not train.any():
        raise DataError(f"{path}: no training rows (column 'split' has no 'train'); fix: use the release's "
                        f"examples file, whose training rows carry labels")
    other = df.product_locale[~df.product_locale.isin(LOCALES)]
    if len(other):
        log.warning("%s: %d examples in locales outside %s (%s); they share locale id 0", path.name, len(other),
                    "/".join(LOCALES), other.value_counts().head(5).to_dict())
    only_test = sorted(set(df.product_locale[~train]) - set(df.product_locale[train]))
    if only_test:
        log.warning("%s: locales %s have test rows but no training rows; their predictions rest on the other "
                    "locales' training", path.name, only_test)
    control = df["query"].str.contains(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", regex=True)
    if control.any():
        log.warning("%s: %d queries hold control characters (first at row %d); the tokenizers drop them",
                    path.name, int(control.sum()), _first_bad_row(control))
    if train.all():
        log.warning("%s: no test rows; cross-validation works, but no submission can be made", path.name)


# the entities of nearly every real row, replaced with Arrow kernels (&amp; last, so "&amp;lt;" stays "&lt;" as
# html.unescape leaves it); a row holding any other reference goes through html.unescape itself
_ENTITIES = [("&quot;", '"'), ("&#34;", '"'), ("&#39;", "'"), ("&#x27;", "'"), ("&apos;", "'"), ("&lt;", "<"),
             ("&gt;", ">"), ("&nbsp;", "\xa0"), ("&amp;", "&")]


def clean_text(s: pd.Series) -> pd.Series:
    """HTML tags and entities out, whitespace folded, missing -> "" (never the strings 'None' or 'nan')."""
    arr = pa.array(s, from_pandas=True)
    arr = pc.fill_null(arr.cast(pa.large_string()), "")
    arr = pc.replace_substring_regex(arr, _BREAKS, " ")
    arr = pc.replace_substring_regex(arr, _TAGS, " ")
    known = "|".join(e for e, _ in _ENTITIES)
    rare = pc.match_substring_regex(pc.replace_substring_regex(arr, known, ""), "&[#A-Za-z]")
    rows = np.flatnonzero(rare.to_numpy(zero_copy_only=False))
    fixed = [pa.array([html.unescape(t) for t in arr.take(rows[i:i + 50000]).to_pylist()], pa.large_string())
             for i in range(0, len(rows), 50000)]
    for entity, char in _ENTITIES:
        arr = pc.replace_substring(arr, entity, char)
    if len(rows):
        arr = pc.replace_with_mask(arr, rare, pa.concat_arrays(fixed))
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, _SPACES, " "))
    return pd.Series(arr.to_pandas(), index=s.index, name=s.name)


def validate_products(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    _check_columns(df, PRODUCT_COLUMNS, path)
    df = df[list(PRODUCT_COLUMNS)].copy()
    for col in ("product_id", "product_locale"):
        bad = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if bad.any():
            raise DataError(f"{path}: column '{col}' is empty at row {_first_bad_row(bad)}; fix: fill it or "
                            f"remove the row")
    dup = df.duplicated(["product_locale", "product_id"])
    if dup.any():
        r = _first_bad_row(dup)
        raise DataError(f"{path}: row {r} repeats (product_locale, product_id) = ({df.product_locale.iat[r]}, "
                        f"{df.product_id.iat[r]}); fix: keep one row per product and locale")
    for col in TEXT_FIELDS.values():
        df[col] = clean_text(df[col])
    return df


def load_esci(data_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and validate examples and products; every example's product must be in the catalog."""
    data_dir = Path(data_dir)
    ex_path, pr_path = data_dir / EXAMPLES, data_dir / PRODUCTS
    examples = validate_examples(_read_parquet(ex_path), ex_path)
    products = validate_products(_read_parquet(pr_path), pr_path)
    key = products[["product_locale", "product_id"]].assign(pidx=np.arange(len(products), dtype=np.int64))
    pidx = examples[["product_locale", "product_id"]].merge(key, how="left", on=["product_locale", "product_id"],
                                                           validate="many_to_one").pidx
    missing = pidx.isna().to_numpy()
    if missing.any():
        r = int(np.flatnonzero(missing)[0])
        raise DataError(f"{ex_path}: {int(missing.sum())} examples name a product missing from {pr_path.name}, "
                        f"first at row {r} (example_id {examples.example_id.iat[r]}, product "
                        f"{examples.product_locale.iat[r]}/{examples.product_id.iat[r]}); fix: use the products "
                        f"file of the same release")
    examples["pidx"] = pidx.to_numpy(np.int64)
    empty_title = products.product_title.eq("")
    if empty_title.any():
        log.info("%s: %d products have no title (kept; their text is brand/bullets/description)",
                 pr_path.name, int(empty_title.sum()))
    src = data_dir / SOURCES
    if src.exists():
        sources = pd.read_csv(src)
        if not {"query_id", "source"} <= set(sources.columns):
            raise DataError(f"{src}: columns 'query_id' and 'source' expected, found {list(sources.columns)}; "
                            f"fix: use the public release's sources file or remove it")
        examples = examples.merge(sources[["query_id", "source"]].drop_duplicates("query_id"),
                                  on="query_id", how="left")
    return examples, products
