"""Pre-training's corpora as data: the catalog tokenized once, kept as flat arrays, read memory-mapped.

In: the prepared catalog (output/<profile>/data/products.parquet), a tokenizer, pt_max_len, pt_span_mean and seed.
Out: output/<profile>/features/pt_<key>/, made by esci.features' store machinery (written whole or not at all, one
process at a time; key: the text of every field read, the tokenizer's files, pt_max_len, pt_span_mean, seed, the
code version):
  text_tokens/offsets    each product's `locale | title | brand | color | bullets | description` (empty fields
                         skipped) as token ids without special tokens, at most pt_max_len - 2 of them. The catalog
                         is read in chunks; each piece (locale, title, brand, color, `bullets | description`) is
                         cut to CHARS_PER_TOKEN * pt_max_len characters, tokenized once per distinct value in large
                         batches, and the pieces are joined with array operations (the same ids as tokenizing the
                         joined text where the tokenizer splits words at spaces and punctuation, as WordPiece and
                         SentencePiece do; the first rows are compared, and a warning says where they differ)
  hole.npy               (products, 2): start and length of ` | brand | color` inside that row
  query_tokens/offsets   each product's fake query, tokenized: 1-2 character spans of `title brand color`, each of
                         truncated-Poisson length (mean per locale, pt_span_mean), drawn with numpy over the chunk's
                         code points; empty where that text is empty
  query_text_bytes/offsets  the fake queries' UTF-8 text
  locale.npy             locale id per product (esci.features.LOCALE_IDS; 0 = other)
  meta.json              templates, counts, unknown-token shares per locale and piece
`corpora(cfg, tokenizer)` splits the products (pt_max_products, pt_holdout) and returns each enabled task's rows as a
view: `lengths` for the bucketed sampler, `batch(rows)` gathers padded tensors from the arrays (no per-row object):
  mlm     per locale, the rows of its products in catalog order joined by [SEP] and cut into [CLS] ... [SEP] blocks of
          pt_max_len (positions in that virtual stream; nothing is copied)
  p2q     every product with a fake query: (its query, its row) label 1, and within its locale the queries of a
          cyclic shift of a random order (never its own) label 0; a pair is assembled like fine-tuning's pairs
          (esci.features.Features: the tokenizer's pair template, longest-first truncation)
  attr    the row without ` | brand | color`, labelled with the brand and color classes (values seen at least twice
          among the fit products; missing or rare: ignored); rows with neither are left out
  simcse  the row itself
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from tqdm.auto import tqdm

from . import EsciError
from .encoder import model_config, takes_types
from .features import (LOCALE_IDS, ArrayWriter, Coverage, Features, FlatWriter, TokenStore, _flat, _load, _save,
                       _strings, _tokenize, assemble, join_fields, made_once, pair_template, product_chunks,
                       segments, tokenizer_fingerprint, types_key, value_ids, warn_coverage)
from .io import read_json
from .prepare import check_prepared, load_products

log = logging.getLogger("esci")

VERSION = 3  # bump when what the corpora hold for the same inputs changes: in the store's key and a run's fingerprint
TASKS = ("mlm", "p2q", "attr", "simcse")
PIECES = ("title", "brand", "color", "tail")   # tail: `bullets | description`
# a piece is cut to this many characters per token of pt_max_len before tokenizing: 5 lost no token a row could hold
# on 20,000 generated English products (6 tokenizes 10% more text); rows_cut_short in meta.json counts where it did
CHARS_PER_TOKEN = 5
SPAN_LOCALES = ("us", "es", "jp")  # order of pt_span_mean
IGNORE = -100
SPACE = 32


def truncated_poisson(rng: np.random.Generator, mean: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Poisson(mean) draws conditioned on 1 <= k <= high, element-wise (redrawn; clipped after 20 rounds)."""
    mean, high = np.broadcast_arrays(np.asarray(mean, float), np.asarray(high))
    k = rng.poisson(mean)
    for _ in range(20):
        bad = (k < 1) | (k > high)
        if not bad.any():
            break
        k[bad] = rng.poisson(mean[bad])
    return np.clip(k, 1, np.maximum(high, 1))


def codepoints(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(uint32 code points, int64 offsets in code points) of a string array."""
    data, off = _flat(text)
    cp = np.frombuffer(data.tobytes().decode("utf-8").encode("utf-32-le"), np.uint32)
    chars_before = np.concatenate([[0], np.cumsum((data & 0xC0) != 0x80)])
    return cp, chars_before[off]


def utf8_strings(cp: np.ndarray, lens: np.ndarray) -> pa.Array:
    """The strings made of consecutive runs of `lens` code points of cp."""
    nbytes = 1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000)
    ends = np.concatenate([[0], np.cumsum(nbytes)])[np.concatenate([[0], np.cumsum(lens)])]
    data = cp.astype(np.uint32).tobytes().decode("utf-32-le").encode("utf-8")
    return pa.LargeStringArray.from_buffers(len(lens), pa.py_buffer(ends.astype(np.int64).tobytes()),
                                            pa.py_buffer(data))


def fake_queries(source: pa.Array, means: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Per text, 1-2 character spans of truncated-Poisson length (mean per row) joined by a space; "" for "".
    Vectorized over the texts' code points."""
    cp, off = codepoints(source)
    n = np.diff(off)
    k = truncated_poisson(rng, means[:, None], np.repeat(n[:, None], 2, axis=1))
    start = off[:-1, None] + (rng.random(k.shape) * (n[:, None] - k + 1)).astype(np.int64)
    two = rng.integers(1, 3, len(n)) == 2
    k[:, 1] *= two
    k[n == 0] = 0
    cp = np.concatenate([cp, np.array([SPACE], np.uint32)])
    starts = np.stack([start[:, 0], np.full(len(n), len(cp) - 1), start[:, 1]], axis=1)
    lens = np.stack([k[:, 0], (k[:, 1] > 0).astype(np.int64), k[:, 1]], axis=1)
    return utf8_strings(segments(cp, starts.ravel(), lens.ravel()), lens.sum(1))


def span_means(cfg, locales: pa.Array) -> np.ndarray:
    table = dict(zip(SPAN_LOCALES, cfg.pt_span_mean))
    codes = pc.dictionary_encode(_strings(locales))
    per_value = np.array([table.get(v, 4.0) for v in codes.dictionary.to_pylist()] or [4.0])
    return per_value[codes.indices.to_numpy(zero_copy_only=False)]


def _distinct_tokens(tokenizer, text: pa.Array, cap: int):
    """Token ids of each distinct text tokenized once: (flat, start per row, length per row, unknown per row)."""
    codes = pc.dictionary_encode(text)
    out = ArrayWriter(np.int32)
    n, unknown = _tokenize(tokenizer, codes.dictionary, cap, out)
    flat, off = out.finish()
    idx = codes.indices.to_numpy(zero_copy_only=False)
    return flat, off[idx], n[idx], unknown[idx]


def pieces_differ(tokenizer, text: pa.Array, rows: np.ndarray, lens: np.ndarray, whole: np.ndarray,
                  n: int = 200) -> float:
    """The share of the first n `whole` rows (flat ids, count per row) that differ from the tokenizer's encoding of
    their joined text: 0 where tokenizing piece by piece gives the tokenizer's own ids."""
    idx = np.flatnonzero(whole)[:n]
    if not len(idx):
        return 0.0
    off = np.cumsum(lens) - lens
    want = tokenizer(text.take(idx).to_pylist(), add_special_tokens=False)["input_ids"]
    return float(np.mean([rows[off[r]:off[r] + lens[r]].tolist() != w for r, w in zip(idx, want)]))


def _build(cfg, tokenizer, products: int, tmp: Path) -> dict:
    single, _ = pair_template(tokenizer, pair=False)
    budget = cfg.pt_max_len - (len(single) - 1)
    if budget < 2:
        raise EsciError(f"pt_max_len={cfg.pt_max_len} leaves no room for product text; fix: raise pt_max_len")
    chars = CHARS_PER_TOKEN * cfg.pt_max_len
    sep = np.asarray(tokenizer("|", add_special_tokens=False)["input_ids"], np.int32)
    coverage = Coverage()
    text = FlatWriter(tmp, "text", "tokens", np.int32)
    query = FlatWriter(tmp, "query", "tokens", np.int32)
    query_text = FlatWriter(tmp, "query_text", "bytes", np.uint8)
    holes, locales, capped, short = [], [], 0, 0
    with tqdm(total=products, desc="pre-training corpora", unit="products", mininterval=2) as bar:
        for i, chunk in enumerate(product_chunks(cfg, ["product_locale", "title", "brand", "color", "bullets",
                                                      "description"])):
            loc = _strings(chunk["product_locale"])
            B = len(loc)
            pieces = {"locale": loc, "title": _strings(chunk["title"]), "brand": _strings(chunk["brand"]),
                      "color": _strings(chunk["color"]), "tail": join_fields(chunk, ["bullets", "description"], " | ")}
            sources, starts, lens, base = [sep], [], [], len(sep)
            cut = np.zeros(B, bool)
            for name, values in pieces.items():
                cut |= pc.greater(pc.utf8_length(values), chars).to_numpy(zero_copy_only=False)
                flat, st, n, unknown = _distinct_tokens(tokenizer, pc.utf8_slice_codeunits(values, 0, chars), budget)
                if name != "locale":  # ` | ` before every non-empty field
                    coverage.add(name, loc, n, unknown)
                    starts.append(np.zeros(B, np.int64))
                    lens.append(np.where(n > 0, len(sep), 0))
                starts.append(st + base)
                lens.append(n)
                sources.append(flat)
                base += len(flat)
            starts, lens = np.stack(starts, axis=1), np.stack(lens, axis=1)
            kept = np.clip(budget - (np.cumsum(lens, axis=1) - lens), 0, lens)
            capped += int((kept.sum(1) < lens.sum(1)).sum())
            short += int((cut & (kept.sum(1) < budget)).sum())  # cut text, yet the row had room for more
            rows = segments(np.concatenate(sources), starts.ravel(), kept.ravel())
            text.add(rows, kept.sum(1))
            if i == 0:
                whole = ~cut & (kept.sum(1) == lens.sum(1))  # rows that hold their whole text
                differ = pieces_differ(tokenizer, join_fields(pieces, list(pieces), " | "), rows, kept.sum(1), whole)
                if differ > 0.02:  # more than an odd row (a field of spaces only): the tokenizer differs throughout
                    log.warning("pre-training corpora: %d%% of the first rows checked differ from the tokenizer's "
                                "encoding of the same text (its pieces are tokenized one by one: a tokenizer that "
                                "marks a word by the space before it, such as byte-level BPE, starts each piece "
                                "without it); pre-training still runs, on those ids", round(100 * differ))
            # pieces: locale, sep, title, sep, brand, sep, color, sep, tail
            holes.append(np.stack([kept[:, :3].sum(1), kept[:, 3:7].sum(1)], axis=1).astype(np.int32))
            locales.append(pc.index_in(loc, pa.array(list(LOCALE_IDS))).fill_null(-1).to_numpy() + 1)

            source = join_fields(chunk, ["title", "brand", "color"], " ")
            q = fake_queries(source, span_means(cfg, loc), np.random.default_rng([cfg.seed, 2, i]))
            n, unknown = _tokenize(tokenizer, q, budget, query)
            coverage.add("fake_query", loc, n, unknown)
            data, off = _flat(q)
            query_text.add(data, np.diff(off))
            bar.update(B)
    n_text, n_query = int(text.finish()[-1]), int(query.finish()[-1])
    query_text.finish()
    _save(tmp, "hole", np.concatenate(holes) if holes else np.zeros((0, 2), np.int32))
    _save(tmp, "locale", np.concatenate(locales).astype(np.int8) if locales else np.zeros(0, np.int8))
    pair, pair_types = pair_template(tokenizer)
    return dict(pt_max_len=cfg.pt_max_len, chars_per_piece=chars, products=products, text_tokens=n_text,
                query_tokens=n_query, rows_capped=capped, rows_cut_short=short, single=single, pair=pair, pair_types=pair_types,
                pad_id=tokenizer.pad_token_id or 0, cls_id=tokenizer.cls_token_id, sep_id=tokenizer.sep_token_id,
                use_types=takes_types(tokenizer, model_config(cfg.model_dir)), unk_share=coverage.shares())


@dataclass
class CorpusStore:
    folder: Path
    text: np.ndarray
    text_off: np.ndarray
    query: np.ndarray
    query_off: np.ndarray
    hole: np.ndarray
    locale: np.ndarray
    meta: dict

    @classmethod
    def open(cls, folder: Path) -> "CorpusStore":
        return cls(folder, _load(folder, "text_tokens"), _load(folder, "text_offsets"), _load(folder, "query_tokens"),
                   _load(folder, "query_offsets"), _load(folder, "hole"), _load(folder, "locale"),
                   read_json(folder / "meta.json"))

    def __post_init__(self):
        self.text_len = np.diff(self.text_off)
        self.query_len = np.diff(self.query_off)

    def __len__(self):
        return len(self.locale)

    def query_texts(self, rows) -> list[str]:
        """The fake queries of `rows` as text (for inspection and tests)."""
        data, off = _load(self.folder, "query_text_bytes"), _load(self.folder, "query_text_offsets")
        return [bytes(data[off[r]:off[r + 1]]).decode() for r in rows]

    def rows(self, flat: np.ndarray, starts, lens, pad_multiple: int) -> dict:
        """[CLS] tokens [SEP] (the tokenizer's template for one text) of pieces of `flat` (see features.assemble)."""
        m = self.meta
        return assemble(m["single"], [0] * len(m["single"]), [(flat, starts, lens)], m["pad_id"], pad_multiple,
                        m["use_types"])


def corpus_store(cfg, tokenizer) -> CorpusStore:
    """The pre-training corpora of this catalog, tokenizer, pt_max_len, span means and seed: opened, or built once."""
    summary = check_prepared(cfg)
    fields = ["product_locale", "title", "brand", "color", "bullets", "description"]
    fp = tokenizer_fingerprint(cfg.model_dir, tokenizer)
    use_types = takes_types(tokenizer, model_config(cfg.model_dir))
    folder, built = made_once(cfg, "pt", [[summary["hashes"][f] for f in fields], fp, cfg.pt_max_len,
                                          cfg.pt_span_mean, cfg.seed, CHARS_PER_TOKEN, VERSION,
                                          *types_key(tokenizer, use_types)],
                              lambda tmp: {**_build(cfg, tokenizer, summary["products"], tmp), "tokenizer": fp})
    store = CorpusStore.open(folder)
    if built:
        m = store.meta
        log.info("pre-training corpora %s: %d products, %d text tokens (%d rows cut at pt_max_len), %d fake-query "
                 "tokens; %d rows whose text was cut at %d characters had room for more", folder.name, m["products"],
                 m["text_tokens"], m["rows_capped"], m["query_tokens"], m["rows_cut_short"], m["chars_per_piece"])
        warn_coverage(cfg, folder)
    return store


class Blocks:
    """MLM: per locale, the rows of `products` in catalog order joined by [SEP] and cut into blocks of max_len."""

    def __init__(self, store: CorpusStore, products: np.ndarray, max_len: int):
        self.store = store
        self.special = len(store.meta["single"]) - 1
        step = max_len - self.special
        self.order = products[np.lexsort((products, store.locale[products]))]
        self.cum = np.concatenate([[0], np.cumsum(store.text_len[self.order] + 1)])  # stream position of each row
        locale = store.locale[self.order]
        edges = np.concatenate([[0], np.flatnonzero(np.diff(locale)) + 1, [len(locale)]])
        ranges = [(self.cum[a], self.cum[b]) for a, b in zip(edges[:-1], edges[1:]) if b > a]
        self.starts = np.concatenate([np.arange(a, b, step) for a, b in ranges] or [np.zeros(0, np.int64)])
        ends = np.concatenate([np.full(len(range(a, b, step)), b) for a, b in ranges] or [np.zeros(0, np.int64)])
        self.lens = np.minimum(step, ends - self.starts)
        self.lengths = self.lens + self.special
        self.labels = None

    def __len__(self):
        return len(self.starts)

    def batch(self, rows, pad_multiple: int = 1) -> dict:
        s, n = self.starts[rows], self.lens[rows]
        pos = np.repeat(s - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
        k = np.searchsorted(self.cum, pos, "right") - 1
        within = pos - self.cum[k]
        product = self.order[k]
        st = self.store
        at = np.minimum(st.text_off[product] + within, max(len(st.text) - 1, 0))
        tokens = np.where(within < st.text_len[product], st.text[at] if len(st.text) else 0, st.meta["sep_id"])
        return st.rows(tokens, np.cumsum(n) - n, n, pad_multiple)


class Texts:
    """SimCSE (each product's row) and the attribute tasks (the row without ` | brand | color`, labelled)."""

    def __init__(self, store: CorpusStore, products: np.ndarray, labels: np.ndarray | None = None,
                 hole: bool = False):
        self.store, self.products, self.labels, self.hole = store, products, labels, hole
        cut = store.hole[products, 1] if hole else 0
        self.lengths = store.text_len[products] - cut + len(store.meta["single"]) - 1

    def __len__(self):
        return len(self.products)

    def batch(self, rows, pad_multiple: int = 1) -> dict:
        st, p = self.store, self.products[rows]
        start, n = st.text_off[p], st.text_len[p]
        if self.hole:
            at, cut = st.hole[p, 0].astype(np.int64), st.hole[p, 1].astype(np.int64)
            start, n = np.stack([start, start + at + cut], axis=1), np.stack([at, n - at - cut], axis=1)
        out = st.rows(st.text, start, n, pad_multiple)
        if self.labels is not None:
            out["labels"] = torch.from_numpy(self.labels[rows])
        return out


class Pairs:
    """Product2Query: fine-tuning's pair assembly (esci.features.Features) over the fake queries and the rows."""

    def __init__(self, store: CorpusStore, queries: np.ndarray, products: np.ndarray, labels: np.ndarray, cfg):
        m = store.meta
        tok = TokenStore(store.folder, store.query, store.query_off, store.text, store.text_off, np.array(m["pair"]),
                         np.array(m["pair_types"]), m["use_types"], m["pad_id"], cfg.pt_max_len)
        self.feats = Features(tok, None, queries, products, cfg.replace(use_units=False, use_ids=False))
        self.queries, self.products, self.labels = queries, products, labels
        self.lengths = self.feats.lengths

    def __len__(self):
        return len(self.labels)

    def batch(self, rows, pad_multiple: int = 1) -> dict:
        out = self.feats.batch(rows, pad_multiple)
        out["labels"] = torch.from_numpy(self.labels[rows])
        return out


def p2q_pairs(store: CorpusStore, products: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(query's product, product, label): every product with a fake query with its own (1), and within each locale
    the queries of a cyclic shift of a random order of those products (0: never a product's own)."""
    has = products[store.query_len[products] > 0]
    locale = store.locale[has]
    q, p = [has], [has]
    for value in np.unique(locale):
        idx = has[locale == value]
        if len(idx) < 2:
            continue
        order = idx[rng.permutation(len(idx))]
        q.append(np.roll(order, -1))
        p.append(order)
    q, p = np.concatenate(q), np.concatenate(p)
    labels = (np.arange(len(q)) < len(has)).astype(np.int64)
    return q, p, labels


def corpora(cfg, tokenizer) -> tuple[dict, dict, dict]:
    """(fit views, held-out views, brand / color vocabularies {value: class}) of the enabled tasks. The products are
    the catalog's (a seeded subset of pt_max_products when set), a seeded pt_holdout share of them held out."""
    store = corpus_store(cfg, tokenizer)
    rows = np.arange(len(store))
    if cfg.pt_max_products and len(rows) > cfg.pt_max_products:
        rows = np.sort(np.random.default_rng(cfg.seed).choice(len(rows), cfg.pt_max_products, replace=False))
    held = np.random.default_rng(cfg.seed + 1).random(len(rows)) < cfg.pt_holdout
    parts = {"fit": rows[~held], "held": rows[held]}
    vocabs, labels = {"brand": {}, "color": {}}, None
    if cfg.pt_brand or cfg.pt_color:
        products = load_products(cfg, ["brand", "color"])
        labels = np.full((len(store), 2), IGNORE, np.int64)
        for k, name in enumerate(("brand", "color")):
            if cfg[f"pt_{name}"]:
                ids, vocab = value_ids(products[name], parts["fit"], 2)
                labels[:, k] = np.where(ids > 0, ids - 1, IGNORE)
                vocabs[name] = {v: i - 1 for v, i in vocab.items()}
        del products
    views = {}
    for j, (part, products) in enumerate(parts.items()):
        views[part] = v = {}
        if cfg.pt_mlm:
            v["mlm"] = Blocks(store, products, cfg.pt_max_len)
        if cfg.pt_p2q:
            v["p2q"] = Pairs(store, *p2q_pairs(store, products, np.random.default_rng([cfg.seed, 3, j])), cfg)
        if labels is not None:
            y = labels[products]
            keep = (y != IGNORE).any(axis=1)
            v["attr"] = Texts(store, products[keep], y[keep], hole=True)
        if cfg.pt_simcse:
            v["simcse"] = Texts(store, products)
    return views["fit"], views["held"], vocabs
