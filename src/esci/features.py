"""Model inputs as data: made once per data set, read memory-mapped by every fold, experiment and task.

In: the prepared tables (output/<profile>/data/), a tokenizer and the config's fields, max_len and max_chars.
Out, under output/<profile>/features/ (each folder named by a hash of everything it depends on, written whole or
not at all):
  tok_<key>/    every query's and every product's token ids without special tokens: flat int32 arrays with int64
                offsets (.npy). Product text is `title | brand | ...` in the configured order (empty fields skipped),
                cut to max_chars characters, then tokenized in large batches. Key: the text of every field used,
                the tokenizer's files, fields, max_len, max_chars, the code version.
  units_<key>/  lower-cased UTF-8 text of each query, each product's title+brand+color+bullets and description
                (flat bytes + offsets), the brand/color values with their ids (values seen at least id_min_count
                times in training judgements, by count then value; 0 = other) and each product's locale, brand
                and color id. Key: the text, the training judgements, id_min_count, the code version.
`Features` is a view of rows (their query and product rows in those stores). Its `batch(rows)` assembles each
(query, product) pair the way the tokenizer's pair template does, with longest-first truncation to max_len (the
rule of the fast tokenizers), and hashes the char 3-grams of the three semantic units into `ngram_buckets` rows at
collate time (vectorized over the batch; stable across machines and runs), so no per-row object is ever held.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from . import LOCALES, EsciError
from .data import TEXT_FIELDS
from .encoder import encoder_dir, model_config, takes_types
from .io import made_once as build_once, read_json, read_parquet, reading
from .prepare import check_prepared, load_products

log = logging.getLogger("esci")

VERSION = 1  # bump when what a store holds changes
LOCALE_IDS = {loc: i + 1 for i, loc in enumerate(LOCALES)}
UNITS = ("query", "mid", "desc")  # query / title+brand+color+bullets / description
CHUNK = 20000  # texts per tokenizer call
PRODUCT_CHUNK = 100_000  # catalog rows in memory at a time while a store is made
_K = [np.uint64(k) for k in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xFF51AFD7ED558CCD)]


def _key(parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _strings(s) -> pa.Array:
    arr = s if isinstance(s, (pa.Array, pa.ChunkedArray)) else pa.array(s, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.fill_null(arr.cast(pa.large_string()), "")


def join_fields(df, fields: list[str], sep: str) -> pa.Array:
    """Non-empty fields in the given order joined by `sep` (vectorized); df: a DataFrame or {name: Arrow array}."""
    cols = [_strings(df[f]) for f in fields]
    cols = [pc.if_else(pc.equal(c, ""), pa.scalar(None, pa.large_string()), c) for c in cols]
    # a leading "" (never null), cut off after: pyarrow drops the rows whose every value is null under "skip"
    lead = pa.repeat(pa.scalar("", pa.large_string()), len(cols[0]))
    joined = pc.binary_join_element_wise(lead, *cols, pa.scalar(sep, pa.large_string()), null_handling="skip")
    return pc.utf8_slice_codeunits(joined, len(sep))


def norm_value(s: pd.Series) -> pd.Series:
    return s.str.lower().str.strip()


def _flat(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 bytes, int64 offsets) of a string array."""
    arr = pa.concat_arrays([arr.cast(pa.large_string())])  # offset 0
    _, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, np.int64)[:len(arr) + 1]
    return (np.frombuffer(data, np.uint8)[:off[-1]] if data is not None else np.zeros(0, np.uint8)), off - off[0]


def _save(folder: Path, name: str, arr: np.ndarray) -> None:
    np.save(folder / f"{name}.npy", arr, allow_pickle=False)


class FlatWriter:
    """Rows of variable length appended chunk by chunk to <name>_<values>.npy (flat) and <name>_offsets.npy, so a
    store of any size is written with one chunk in memory."""

    def __init__(self, folder: Path, name: str, values: str, dtype):
        self.folder, self.name, self.values, self.dtype = folder, name, values, np.dtype(dtype)
        self.raw = folder / f"{name}.raw"
        self.file = open(self.raw, "wb")
        self.lens: list = []

    def add(self, flat: np.ndarray, lens: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(flat, self.dtype).tobytes())
        self.lens.append(np.asarray(lens, np.int64))

    def finish(self) -> np.ndarray:
        """Writes both files; returns the offsets."""
        self.file.close()
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(self.lens or [np.zeros(0, np.int64)]))])
        _save(self.folder, f"{self.name}_offsets", offsets.astype(np.int64))
        with open(self.folder / f"{self.name}_{self.values}.npy", "wb") as f, open(self.raw, "rb") as r:
            np.lib.format.write_array_header_1_0(f, {"descr": self.dtype.str, "fortran_order": False,
                                                     "shape": (int(offsets[-1]),)})
            shutil.copyfileobj(r, f, 1 << 24)
        self.raw.unlink()
        return offsets


class ArrayWriter:
    """FlatWriter's interface, in memory: finish() returns (flat values, offsets)."""

    def __init__(self, dtype):
        self.dtype, self.parts, self.lens = np.dtype(dtype), [], []

    def add(self, flat: np.ndarray, lens: np.ndarray) -> None:
        self.parts.append(np.asarray(flat, self.dtype))
        self.lens.append(np.asarray(lens, np.int64))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        lens = np.concatenate(self.lens or [np.zeros(0, np.int64)])
        flat = np.concatenate(self.parts) if self.parts else np.zeros(0, self.dtype)
        return flat, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)


def product_chunks(cfg, columns: list[str]):
    """The prepared catalog's columns as {name: Arrow array}, PRODUCT_CHUNK rows at a time."""
    path = cfg.data_root / "products.parquet"
    with reading(path):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PRODUCT_CHUNK, columns=columns):
            yield {name: batch.column(name) for name in columns}
            pa.default_memory_pool().release_unused()


def _load(folder: Path, name: str) -> np.ndarray:
    return np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)


def made_once(cfg, kind: str, key_parts: list, build) -> tuple[Path, bool]:
    """(the folder of store `kind` keyed by key_parts, whether this call built it). build(tmp) writes the store's
    arrays into tmp and returns its summary (meta.json, written last). One process builds at a time; the ranks of
    a distributed launch and later runs wait for it and open the same folder."""
    key = _key([kind, VERSION, *key_parts])
    folder = cfg.features_root / f"{kind}_{key}"

    def made(tmp: Path) -> dict:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
        return {"key": key, "version": VERSION, **build(tmp)}

    return folder, build_once(folder, made)


# ---------------------------------------------------------------- token store

def tokenizer_fingerprint(model_dir: str, tokenizer) -> str:
    """Hash of the tokenizer's files (vocabulary, merges, sentencepiece model, configs) and class."""
    h = hashlib.sha1(type(tokenizer).__name__.encode())
    folder = encoder_dir(model_dir)
    for f in sorted(folder.iterdir()):
        if f.is_file() and (f.name.startswith(("tokenizer", "vocab", "special_tokens", "merges", "added_tokens",
                                               "sentencepiece", "spiece")) or f.suffix == ".model"):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def types_key(tokenizer, use_types: bool) -> list:
    """A store's key part where the model drops the token types its tokenizer makes (none otherwise, so the keys of
    stores made before this distinction hold)."""
    return [] if use_types == ("token_type_ids" in tokenizer.model_input_names) else ["no_types"]


def pair_template(tokenizer, pair: bool = True) -> tuple[list[int], list[int]]:
    """The tokenizer's pair layout as (ids, token types), the query's tokens marked -1 and the product's -2 (pair=False:
    the layout of one text, its tokens marked -1). Probe texts are found in the tokenizer's own encoding of the pair,
    whatever the number of tokens it makes of them (a small SentencePiece vocabulary splits "a" in two)."""
    for a, b in (("a", "b"), ("x", "y"), ("1", "2"), ("hello", "world")):
        ta = tokenizer(a, add_special_tokens=False)["input_ids"]
        tb = tokenizer(b, add_special_tokens=False)["input_ids"]
        if ta and tb and ta != tb:
            break
    else:
        raise EsciError(f"{type(tokenizer).__name__}: cannot find probe texts for the pair template; fix: use the "
                        f"tokenizer files of the encoder's checkpoint")
    enc = tokenizer(a, b, return_token_type_ids=True) if pair else tokenizer(a, return_token_type_ids=True)
    ids, types = enc["input_ids"], list(enc.get("token_type_ids") or [0] * len(enc["input_ids"]))
    parts = [ta, tb] if pair else [ta]
    out, out_types, i, k = [], [], 0, 0
    while i < len(ids):
        if k < len(parts) and ids[i:i + len(parts[k])] == parts[k]:
            out.append(-1 - k)
            i, k = i + len(parts[k]), k + 1
        else:
            out.append(ids[i])
            i += 1
        out_types.append(types[i - 1])
    if k != len(parts):
        raise EsciError(f"{type(tokenizer).__name__}: unexpected pair template {ids}; fix: use the tokenizer files "
                        f"of the encoder's checkpoint")
    return out, out_types


@contextlib.contextmanager
def _encoder(tokenizer, cap: int):
    """A function from texts to their token ids (no special tokens, at most cap each). With a fast tokenizer, its Rust
    backend's encode_batch_fast, truncating at cap (no character offsets computed and no BatchEncoding made per
    text: the same ids about 15% sooner); its truncation and padding settings are restored after."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        yield lambda batch: tokenizer(batch, add_special_tokens=False, truncation=True, max_length=cap,
                                      return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        return
    truncation, padding = backend.truncation, backend.padding
    backend.no_padding()
    backend.enable_truncation(cap, direction=getattr(tokenizer, "truncation_side", "right"))
    try:
        yield lambda batch: [e.ids for e in backend.encode_batch_fast(batch, add_special_tokens=False)]
    finally:
        backend.enable_truncation(**truncation) if truncation else backend.no_truncation()
        backend.enable_padding(**padding) if padding else backend.no_padding()


def _tokenize(tokenizer, texts: pa.Array, cap: int, out, bar=None) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of every text (no special tokens, at most `cap`), appended to `out`; returns each text's token count
    and how many of them are the unknown token."""
    counts, unknown = [], []
    unk = tokenizer.unk_token_id
    with _encoder(tokenizer, cap) as encode:
        for start in range(0, len(texts), CHUNK):
            batch = texts.slice(start, CHUNK).to_pylist()
            ids = encode(batch)
            n = np.fromiter(map(len, ids), np.int64, len(ids))
            flat = np.fromiter(itertools.chain.from_iterable(ids), np.int32, int(n.sum()))
            out.add(flat, n)
            counts.append(n)
            hits = np.repeat(np.arange(len(n)), n)[flat == unk] if unk is not None else np.zeros(0, np.int64)
            unknown.append(np.bincount(hits, minlength=len(n)))
            if bar is not None:
                bar.update(len(batch))
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(counts), np.concatenate(unknown)


class Coverage:
    """How much of the text the tokenizer can read: unknown tokens per (locale, field), added chunk by chunk."""

    def __init__(self):
        self.counts: dict = {}

    def add(self, field: str, locales, n: np.ndarray, unknown: np.ndarray) -> None:
        codes = pc.dictionary_encode(_strings(locales))
        idx = codes.indices.to_numpy(zero_copy_only=False)
        for i, loc in enumerate(codes.dictionary.to_pylist()):
            a, b = self.counts.get(f"{loc or '-'}/{field}", (0, 0))
            self.counts[f"{loc or '-'}/{field}"] = (a + int(unknown[idx == i].sum()), b + int(n[idx == i].sum()))

    def shares(self) -> dict:
        """{"<locale>/<field>": share of its tokens that are the unknown token}."""
        return {k: round(u / t, 5) for k, (u, t) in sorted(self.counts.items()) if t}


def warn_coverage(cfg, folder: Path) -> None:
    """One warning line for the (locale, field) pairs of a new store whose unknown-token share is above unk_warn;
    given once per data set and tokenizer (not again for its other stores: another field order, the corpora)."""
    meta = read_json(folder / "meta.json")
    high = {k: v for k, v in meta.get("unk_share", {}).items() if v > cfg.unk_warn}
    if not high or cfg.unk_warn <= 0:
        return
    for other in cfg.features_root.glob("*/meta.json"):
        if other.parent != folder and read_json(other).get("tokenizer") == meta["tokenizer"]:
            return
    worst = ", ".join(f"{k.replace('/', ' ')} {v:.1%}" for k, v in sorted(high.items(), key=lambda kv: -kv[1]))
    log.warning("the encoder's tokenizer (%s) reads part of this data as its unknown token: %s of tokens (above "
                "unk_warn=%g; %s); fix: MODEL_DIR=<a multilingual encoder: XLM-R, InfoXLM, mDeBERTa>",
                cfg.model_dir or "the packaged all-MiniLM-L6-v2", worst, cfg.unk_warn, folder.name)


@dataclass
class TokenStore:
    folder: Path
    q_tokens: np.ndarray
    q_off: np.ndarray
    p_tokens: np.ndarray
    p_off: np.ndarray
    template: np.ndarray
    types: np.ndarray
    use_types: bool
    pad_id: int
    max_len: int

    @classmethod
    def open(cls, folder: Path) -> "TokenStore":
        meta = read_json(folder / "meta.json")
        return cls(folder, _load(folder, "query_tokens"), _load(folder, "query_offsets"),
                   _load(folder, "product_tokens"), _load(folder, "product_offsets"), np.array(meta["template"]),
                   np.array(meta["types"]), meta["use_types"], meta["pad_id"], meta["max_len"])


def pair_text(products, cfg, tokenizer) -> pa.Array:
    """The product side of a pair: the configured fields joined by the tokenizer's separator, cut to max_chars."""
    sep = f" {tokenizer.sep_token or '|'} "
    return pc.utf8_slice_codeunits(join_fields(products, cfg.fields, sep), 0, cfg.max_chars or 6 * cfg.max_len)


def token_store(cfg, tokenizer) -> TokenStore:
    """The token store of this data set, tokenizer, fields and max_len: opened, or built once."""
    summary = check_prepared(cfg)
    max_chars = cfg.max_chars or 6 * cfg.max_len
    template, types = pair_template(tokenizer)
    use_types = takes_types(tokenizer, model_config(cfg.model_dir))
    budget = cfg.max_len - (len(template) - 2)  # room left for query + product tokens
    if budget < 2:
        raise EsciError(f"max_len={cfg.max_len} leaves no room for a query and a product; fix: raise max_len")

    def build(tmp: Path) -> dict:
        queries = read_parquet(cfg.data_root / "examples.parquet", columns=["qidx", "query", "product_locale"]) \
            .drop_duplicates("qidx").sort_values("qidx")
        coverage = Coverage()
        out = FlatWriter(tmp, "query", "tokens", np.int32)
        with tqdm(total=len(queries), desc="tokenize queries", unit="rows", mininterval=2) as bar:
            coverage.add("query", queries.product_locale, *_tokenize(tokenizer, _strings(queries["query"]), budget,
                                                                     out, bar))
        nq = int(out.finish()[-1])
        out, cut, short = FlatWriter(tmp, "product", "tokens", np.int32), 0, 0
        with tqdm(total=summary["products"], desc="tokenize products", unit="rows", mininterval=2) as bar:
            for chunk in product_chunks(cfg, [*cfg.fields, "product_locale"]):
                text = pair_text(chunk, cfg, tokenizer)
                n, unknown = _tokenize(tokenizer, text, budget, out, bar)
                coverage.add("product", chunk["product_locale"], n, unknown)
                was_cut = pc.greater_equal(pc.utf8_length(text), max_chars).to_numpy(zero_copy_only=False)
                # cut text that gave fewer tokens than a pair could hold (a larger max_chars would add some)
                cut, short = cut + int(was_cut.sum()), short + int((was_cut & (n < budget)).sum())
        n_p = int(out.finish()[-1])
        return dict(fields=cfg.fields, max_len=cfg.max_len, max_chars=max_chars, template=template, types=types,
                    pad_id=tokenizer.pad_token_id or 0, use_types=use_types, queries=len(queries),
                    products=summary["products"], query_tokens=nq, product_tokens=n_p, products_cut=cut,
                    products_cut_short=short, unk_share=coverage.shares())

    fp = tokenizer_fingerprint(cfg.model_dir, tokenizer)
    folder, built = made_once(cfg, "tok", [summary["hashes"]["query"], [summary["hashes"][f] for f in cfg.fields],
                                           fp, cfg.fields, cfg.max_len, max_chars, *types_key(tokenizer, use_types)],
                              lambda tmp: {**build(tmp), "tokenizer": fp})
    if built:
        meta = read_json(folder / "meta.json")
        log.info("token store %s: %d queries, %d products (%d cut at %d characters, %d of them short of max_len)",
                 folder.name, meta["queries"], meta["products"], meta["products_cut"], max_chars,
                 meta["products_cut_short"])
        warn_coverage(cfg, folder)
    return TokenStore.open(folder)


# ---------------------------------------------------------------- unit store

def value_ids(values: pd.Series, counted_rows: np.ndarray, min_count: int) -> tuple[np.ndarray, dict]:
    """Per row of `values`: the id of its normalized value (1.. by count in counted_rows desc, then value; 0 = empty
    or seen fewer than min_count times there), and the {value: id} vocabulary."""
    codes, uniques = pd.factorize(norm_value(values), use_na_sentinel=True)
    uniques = np.asarray(uniques, dtype=object)
    counted = codes[counted_rows]
    count = np.bincount(counted[counted >= 0], minlength=len(uniques))
    keep = np.flatnonzero((count >= max(min_count, 1)) & (uniques != ""))
    order = keep[np.lexsort((uniques[keep].astype(str), -count[keep]))]
    id_of = np.zeros(len(uniques) + 1, np.int32)  # last slot: missing values (code -1)
    id_of[order] = np.arange(1, len(order) + 1)
    return id_of[codes], {str(uniques[c]): i + 1 for i, c in enumerate(order)}


@dataclass
class UnitStore:
    folder: Path
    text: dict           # unit -> (bytes, offsets)
    ids: np.ndarray      # (products, 3) locale, brand, color
    vocab: dict          # brand / color -> {value: id}

    @classmethod
    def open(cls, folder: Path) -> "UnitStore":
        meta = read_json(folder / "meta.json")
        return cls(folder, {u: (_load(folder, f"{u}_bytes"), _load(folder, f"{u}_offsets")) for u in UNITS},
                   _load(folder, "product_ids"), meta["vocab"])


def unit_texts(products) -> dict:
    """The two product units: title+brand+color+bullets, and description."""
    return {"mid": join_fields(products, ["title", "brand", "color", "bullets"], " "),
            "desc": _strings(products["description"])}


def unit_store(cfg) -> UnitStore:
    """The unit store of this data set, its training split and id_min_count: opened, or built once."""
    summary = check_prepared(cfg)
    split = read_parquet(cfg.data_root / "examples.parquet", columns=["pidx", "split"])
    train_pidx = split.pidx.to_numpy()[split.split.eq("train").to_numpy()]
    del split

    def build(tmp: Path) -> dict:
        queries = read_parquet(cfg.data_root / "examples.parquet", columns=["qidx", "query"]) \
            .drop_duplicates("qidx").sort_values("qidx")["query"]
        out = FlatWriter(tmp, "query", "bytes", np.uint8)
        data, off = _flat(pc.utf8_lower(_strings(queries)))
        out.add(data, np.diff(off))
        out.finish()
        writers = {u: FlatWriter(tmp, u, "bytes", np.uint8) for u in ("mid", "desc")}
        for chunk in product_chunks(cfg, list(TEXT_FIELDS)):
            for unit, text in unit_texts(chunk).items():
                data, off = _flat(pc.utf8_lower(text))
                writers[unit].add(data, np.diff(off))
        for w in writers.values():
            w.finish()
        products = load_products(cfg, ["product_locale", "brand", "color"])
        brand, brand_vocab = value_ids(products.brand, train_pidx, cfg.id_min_count)
        color, color_vocab = value_ids(products.color, train_pidx, cfg.id_min_count)
        locale = products.product_locale.map(LOCALE_IDS).fillna(0).to_numpy(np.int32)
        _save(tmp, "product_ids", np.stack([locale, brand, color], axis=1).astype(np.int32))
        return dict(id_min_count=cfg.id_min_count, products=len(products), queries=len(queries),
                    brands=len(brand_vocab), colors=len(color_vocab), vocab={"brand": brand_vocab, "color": color_vocab})

    # the brand/color vocabulary is counted over the training judgements: their products are part of the key
    split_key = hashlib.sha1(np.ascontiguousarray(train_pidx, np.int64).tobytes()).hexdigest()[:16]
    folder, built = made_once(cfg, "units", [summary["hashes"], cfg.id_min_count, split_key], build)
    if built:
        meta = read_json(folder / "meta.json")
        log.info("unit store %s: %d products, %d queries, %d brands, %d colors", folder.name, meta["products"],
                 meta["queries"], meta["brands"], meta["colors"])
    return UnitStore.open(folder)


# ---------------------------------------------------------------- collate

def segments(flat: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """flat[starts[i]:starts[i]+lens[i]] for every i, concatenated."""
    total = int(lens.sum())
    out_start = np.cumsum(lens) - lens
    return flat[np.arange(total) - np.repeat(out_start - starts, lens)]


def longest_first(lq: np.ndarray, lp: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Kept lengths of (query, product) under the fast tokenizers' longest-first rule for a pair."""
    swap = lq > lp
    short = np.where(swap, lp, lq)
    n_short = short.copy()
    n_long = np.where(short > budget, short, np.maximum(short, budget - short))
    both = n_short + n_long > budget
    n_short = np.where(both, budget // 2, n_short)
    n_long = np.where(both, budget // 2 + budget % 2, n_long)
    n1, n2 = np.where(swap, n_long, n_short), np.where(swap, n_short, n_long)
    fits = lq + lp <= budget
    return np.where(fits, lq, n1), np.where(fits, lp, n2)


def char_ngram_ids(data: np.ndarray, off: np.ndarray, rows: np.ndarray, buckets: int,
                   n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(ids, offsets) for an EmbeddingBag: the hashed char n-grams of each row's text (every n-gram, the last
    included; a shorter non-empty text is one gram; ids 1..buckets, 0 is padding)."""
    start, lens = off[rows], off[rows + 1] - off[rows]
    buf = segments(data, start, lens)
    cp = np.frombuffer(buf.tobytes().decode("utf-8").encode("utf-32-le"), np.uint32).astype(np.uint64)
    first = np.concatenate([[0], np.cumsum((buf & 0xC0) != 0x80)])  # chars before each byte
    byte_start = np.cumsum(lens) - lens
    c_start, c_len = first[byte_start], first[byte_start + lens] - first[byte_start]
    n_grams = np.where(c_len >= n, c_len - n + 1, np.minimum(c_len, 1))
    g_off = np.cumsum(n_grams) - n_grams
    pos = np.arange(int(n_grams.sum())) - np.repeat(g_off - c_start, n_grams)
    end = np.repeat(c_start + c_len, n_grams)
    cp = np.concatenate([cp, np.zeros(n, np.uint64)])
    h = np.zeros(len(pos), np.uint64)
    for j in range(n):
        h ^= np.where(pos + j < end, cp[pos + j], np.uint64(0)) * _K[j]
    h ^= h >> np.uint64(31)
    h *= _K[3]
    h ^= h >> np.uint64(29)
    return (h % np.uint64(buckets)).astype(np.int64) + 1, g_off


def overlap(query: tuple, other: tuple, rows: int) -> np.ndarray:
    """Per row, the share of the query's distinct 3-gram ids that the other unit also has (0 for an empty query)."""
    def keyed(ids, off):
        row = np.repeat(np.arange(rows), np.diff(np.r_[off, len(ids)]))
        return np.unique(row.astype(np.int64) << 32 | ids)
    q, o = keyed(*query), keyed(*other)
    hit = np.bincount(q[np.isin(q, o)] >> 32, minlength=rows)
    return (hit / np.maximum(np.bincount(q >> 32, minlength=rows), 1)).astype(np.float32)


def assemble(template, types, parts: list, pad_id: int, pad_multiple: int = 1, use_types: bool = True) -> dict:
    """Tensors of rows laid out as `template` (a token id, or -1 - i for the tokens of parts[i]), right-padded to a
    multiple of pad_multiple: input_ids, attention_mask (token_type_ids). parts[i] = (flat, starts, lens): a row's
    tokens are flat[start:start + len] of each of its pieces in order (starts, lens: (rows,) or (rows, pieces))."""
    B = len(parts[0][1])
    parts = [(flat, np.asarray(st).reshape(B, -1), np.asarray(ln).reshape(B, -1)) for flat, st, ln in parts]
    n = [ln.sum(1) for _, _, ln in parts]
    length = sum(n) + sum(1 for t in template if t >= 0)
    width = int(-(-max(int(length.max(initial=0)), 1) // pad_multiple) * pad_multiple)
    ids = np.full((B, width), pad_id, np.int64)
    typ = np.zeros((B, width), np.int64)
    col = np.zeros(B, np.int64)
    r = np.arange(B)
    for tok, ty in zip(template, types):
        if tok >= 0:
            ids[r, col], typ[r, col] = tok, ty
            col += 1
            continue
        flat, st, ln = parts[-1 - tok]
        m = n[-1 - tok]
        within = np.arange(int(m.sum())) - np.repeat(np.cumsum(m) - m, m)
        rr, cc = np.repeat(r, m), np.repeat(col, m) + within
        ids[rr, cc] = segments(flat, st.ravel(), ln.ravel())
        typ[rr, cc] = ty
        col += m
    out = {"input_ids": torch.from_numpy(ids),
           "attention_mask": torch.from_numpy((np.arange(width) < col[:, None]).astype(np.int64))}
    if use_types:
        out["token_type_ids"] = torch.from_numpy(typ)
    return out


class Features:
    """Model inputs of a set of rows (their qidx and pidx into the stores), assembled per batch."""

    def __init__(self, tok: TokenStore, units: UnitStore | None, qidx: np.ndarray, pidx: np.ndarray, cfg):
        self.tok, self.units = tok, units
        self.qidx, self.pidx = np.asarray(qidx, np.int64), np.asarray(pidx, np.int64)
        self.use_units, self.use_ids, self.buckets = cfg.use_units, cfg.use_ids, cfg.ngram_buckets
        self.unit_match = cfg.unit_match
        n_special = len(tok.template) - 2
        lq = (tok.q_off[self.qidx + 1] - tok.q_off[self.qidx])
        lp = (tok.p_off[self.pidx + 1] - tok.p_off[self.pidx])
        self.n_q, self.n_p = longest_first(lq, lp, tok.max_len - n_special)
        self.lengths = self.n_q + self.n_p + n_special

    def __len__(self):
        return len(self.qidx)

    def batch(self, rows: np.ndarray, pad_multiple: int = 1) -> dict:
        """Tensors of `rows`: input_ids, attention_mask (token_type_ids), ids, bag{0,1,2} and their offsets."""
        rows = np.asarray(rows)
        t, B = self.tok, len(rows)
        out = assemble(t.template, t.types, [(t.q_tokens, t.q_off[self.qidx[rows]], self.n_q[rows]),
                                             (t.p_tokens, t.p_off[self.pidx[rows]], self.n_p[rows])],
                       t.pad_id, pad_multiple, t.use_types)
        if self.use_ids:
            out["ids"] = torch.from_numpy(self.units.ids[self.pidx[rows]].astype(np.int64))
        if self.use_units:
            bags = []
            for i, unit in enumerate(UNITS):
                data, off = self.units.text[unit]
                g, g_off = char_ngram_ids(data, off, (self.qidx if unit == "query" else self.pidx)[rows], self.buckets)
                out[f"bag{i}"], out[f"bag{i}_offsets"] = torch.from_numpy(g), torch.from_numpy(g_off)
                bags.append((g, g_off))
            if self.unit_match:
                out["overlap"] = torch.from_numpy(np.stack([overlap(bags[0], b, B) for b in bags[1:]], 1))
        return out


def memory_features(cfg, tokenizer, pairs: pd.DataFrame, vocab: dict, use_types: bool) -> Features:
    """Features of new (query, product) pairs held in memory: query, product_locale and the product fields (cleaned
    text); the same tokens, units and ids as the stores would give them. vocab: brand / color -> {value: id};
    use_types: whether the model takes token types (esci.encoder.takes_types)."""
    template, types = pair_template(tokenizer)
    budget = cfg.max_len - (len(template) - 2)
    tokens, texts = {}, {}
    for name, text in (("query", _strings(pairs["query"])), ("product", pair_text(pairs, cfg, tokenizer))):
        out = ArrayWriter(np.int32)
        _tokenize(tokenizer, text, budget, out)
        tokens[name] = out.finish()
    for unit, text in {"query": _strings(pairs["query"]), **unit_texts(pairs)}.items():
        data, off = _flat(pc.utf8_lower(text))
        texts[unit] = (data.copy(), off.copy())
    tok = TokenStore(None, *tokens["query"], *tokens["product"], np.array(template), np.array(types),
                     use_types, tokenizer.pad_token_id or 0, cfg.max_len)
    ids = np.stack([pairs.product_locale.map(LOCALE_IDS).fillna(0).to_numpy(np.int32),
                    norm_value(pairs.brand).map(vocab["brand"]).fillna(0).to_numpy(np.int32),
                    norm_value(pairs.color).map(vocab["color"]).fillna(0).to_numpy(np.int32)], axis=1)
    rows = np.arange(len(pairs))
    return Features(tok, UnitStore(None, texts, ids, vocab), rows, rows, cfg)


def features_for(cfg, tokenizer, rows: pd.DataFrame, tok: TokenStore | None = None,
                 units: UnitStore | None = None) -> Features:
    """Features of a table's rows (its qidx and pidx), opening (or building) the stores the config needs."""
    tok = tok or token_store(cfg, tokenizer)
    if units is None and (cfg.use_units or cfg.use_ids):
        units = unit_store(cfg)
    return Features(tok, units, rows.qidx.to_numpy(), rows.pidx.to_numpy(), cfg)
