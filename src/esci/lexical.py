"""Lexical match features of every judgement, made once per data set (the stacking stage's and the peers' inputs).

In: the prepared tables (output/<profile>/data: examples with qidx/pidx, products).
Out: output/<profile>/features/lexical_<key>.parquet, one row per judgement (train and test, examples' order) with
example_id and FEATURES (float32). Key: the prepared data's identity and VERSION.
  tfidf_char      cosine of char 2-4-gram TF-IDF vectors (within word boundaries) of query and title+brand+color
  tfidf_word      cosine of word TF-IDF vectors of the same texts
  bm25            Okapi BM25 (k1 1.2, b 0.75) of the query's words against title+brand+color over the catalog
  overlap         share of the query's distinct words found in title+brand+color
  brand_in_query  every word of the product's brand is in the query (0 when the brand is empty)
  q_chars q_words t_chars t_words   lengths: query characters and distinct words, title characters, distinct
                  words of title+brand+color
  no_desc no_bullets no_brand no_color   the product field is empty
Vocabularies are hashed (2^20 columns, no dictionary to hold), every cosine and score is a row-wise sparse product
over chunks of judgements: no Python object per row.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer
from tqdm.auto import tqdm

from . import EsciError
from .features import _key, _strings, join_fields, product_chunks
from .io import first_line, read_parquet, write_parquet
from .prepare import check_prepared
from .provenance import data_identity

log = logging.getLogger("esci")

VERSION = 2  # bump when the features of the same data change
FEATURES = ["tfidf_char", "tfidf_word", "bm25", "overlap", "brand_in_query", "q_chars", "q_words", "t_chars",
            "t_words", "no_desc", "no_bullets", "no_brand", "no_color"]
ROWS = 100_000  # judgements per row-wise product
WORDS = r"(?u)\b\w+\b"


def _hashing(**kw) -> HashingVectorizer:
    return HashingVectorizer(n_features=1 << 20, alternate_sign=False, norm=None, lowercase=True, dtype=np.float32,
                             **kw)


def _tfidf(queries: list[str], products: list[str], **kw) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """L2-normalized TF-IDF rows of queries and products, idf over both: sklearn's TfidfTransformer(sublinear_tf=True)
    (smooth idf), computed in place in chunks of rows: the release's catalog has billions of char n-grams, and a
    stacked or transformed copy of them would double or triple the memory."""
    vec = _hashing(**kw)
    q, p = vec.transform(queries), vec.transform(products)
    df = np.bincount(q.indices, minlength=q.shape[1]) + np.bincount(p.indices, minlength=p.shape[1])
    idf = (np.log((1 + q.shape[0] + p.shape[0]) / (1 + df)) + 1).astype(np.float32)
    for m in (q, p):
        for s in range(0, m.shape[0], ROWS):
            e = min(s + ROWS, m.shape[0])
            a, b = m.indptr[s], m.indptr[e]
            d = m.data[a:b]
            np.log(d, out=d)
            d += 1
            d *= idf[m.indices[a:b]]
            row = np.repeat(np.arange(e - s), np.diff(m.indptr[s:e + 1]))
            norm = np.sqrt(np.bincount(row, weights=np.square(d, dtype=np.float64), minlength=e - s))
            d /= np.maximum(norm, 1e-12).astype(np.float32)[row]
    return q, p


def _bm25(counts: sp.csr_matrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """Each product's per-word BM25 weight: idf * tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl))."""
    counts = counts.tocsr().astype(np.float32)
    dl = np.asarray(counts.sum(1)).ravel()
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log1p((counts.shape[0] - df + 0.5) / (df + 0.5)).astype(np.float32)
    norm = np.repeat(k1 * (1 - b + b * dl / max(dl.mean(), 1e-9)), np.diff(counts.indptr))
    tf = counts.data
    counts.data = (idf[counts.indices] * tf * (k1 + 1) / (tf + norm)).astype(np.float32)
    return counts


def rowwise(a: sp.csr_matrix, ia: np.ndarray, b: sp.csr_matrix, ib: np.ndarray, desc: str = "") -> np.ndarray:
    """sum_j a[ia[i], j] * b[ib[i], j] for every i, in chunks of ROWS."""
    out = np.empty(len(ia), np.float32)
    for s in tqdm(range(0, len(ia), ROWS), desc=desc, unit="chunk", disable=len(ia) <= ROWS, mininterval=5):
        e = s + ROWS
        out[s:e] = np.asarray(a[ia[s:e]].multiply(b[ib[s:e]]).sum(1)).ravel()
    return out


def _lengths(arr) -> np.ndarray:
    return pc.utf8_length(_strings(arr)).to_numpy(zero_copy_only=False).astype(np.float32)


def compute(queries: pd.Series, title_side: list[str], brands: list[str], field_lengths: dict,
            qidx: np.ndarray, pidx: np.ndarray) -> dict:
    """The FEATURES of the judgements (qidx[i], pidx[i]); queries by qidx, products by pidx."""
    q_text = queries.fillna("").tolist()
    qc, pc_ = _tfidf(q_text, title_side, analyzer="char_wb", ngram_range=(2, 4))
    out = {"tfidf_char": rowwise(qc, qidx, pc_, pidx, "tfidf_char")}
    del qc, pc_
    qw, pw = _tfidf(q_text, title_side, analyzer="word", token_pattern=WORDS)
    out["tfidf_word"] = rowwise(qw, qidx, pw, pidx, "tfidf_word")
    del qw, pw
    words = _hashing(analyzer="word", token_pattern=WORDS)
    qb = words.transform(q_text)
    qb.data[:] = 1
    counts = words.transform(title_side)
    out["bm25"] = rowwise(qb, qidx, _bm25(counts), pidx, "bm25")
    pb = counts.copy()
    pb.data[:] = 1
    q_words = np.diff(qb.indptr).astype(np.float32)
    out["overlap"] = rowwise(qb, qidx, pb, pidx, "overlap") / np.maximum(q_words[qidx], 1)
    bb = words.transform(brands)
    bb.data[:] = 1
    b_words = np.diff(bb.indptr).astype(np.float32)[pidx]
    out["brand_in_query"] = ((b_words > 0) & (rowwise(bb, pidx, qb, qidx, "brand") >= b_words)).astype(np.float32)
    out["q_chars"] = _lengths(queries)[qidx]
    out["q_words"] = q_words[qidx]
    out["t_chars"] = field_lengths["title"][pidx]
    out["t_words"] = np.diff(pb.indptr).astype(np.float32)[pidx]
    for name, field in (("no_desc", "description"), ("no_bullets", "bullets"), ("no_brand", "brand"),
                        ("no_color", "color")):
        out[name] = (field_lengths[field][pidx] == 0).astype(np.float32)
    return out


def lexical_features(cfg) -> pd.DataFrame:
    """example_id and FEATURES of every prepared judgement: read from the store, or made once and stored (and made
    again where the stored file no longer reads)."""
    check_prepared(cfg)
    key = _key(["lexical", VERSION, data_identity(cfg)])
    path = cfg.features_root / f"lexical_{key}.parquet"
    if path.exists():
        try:
            return read_parquet(path)
        except EsciError as e:
            log.warning("%s: damaged (%s); making it again", path, first_line(e.__cause__ or e))
            path.unlink()
    ex = read_parquet(cfg.data_root / "examples.parquet", columns=["example_id", "qidx", "query", "pidx"])
    queries = ex.drop_duplicates("qidx").sort_values("qidx")["query"].reset_index(drop=True)
    sides, brands, lengths = [], [], {f: [] for f in ("title", "description", "bullets", "brand", "color")}
    for chunk in product_chunks(cfg, list(lengths)):
        sides += join_fields(chunk, ["title", "brand", "color"], " ").to_pylist()
        brands += _strings(chunk["brand"]).to_pylist()
        for f in lengths:
            lengths[f].append(_lengths(chunk[f]))
    lengths = {f: np.concatenate(v) for f, v in lengths.items()}
    feats = compute(queries, sides, brands, lengths, ex.qidx.to_numpy(), ex.pidx.to_numpy())
    table = pd.DataFrame({"example_id": ex.example_id.to_numpy(), **{f: feats[f] for f in FEATURES}})
    write_parquet(table, path)
    log.info("lexical features %s: %d judgements", path.name, len(table))
    return table
