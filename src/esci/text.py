"""Model inputs from a task table: the (query, product) text pair, its tokens, char 3-gram bags and ID values.

In: rows with query, product_locale and the product fields (title, brand, color, bullets, description).
Out: `Features` holding, per row, token ids (truncated longest-first to max_len), three bags of 3-gram ids
(query / title+brand+color+bullets / description) and locale/brand/color ids. Vocabularies are built from
training rows only, ordered by (count desc, value) so ids are stable across runs; 0 means padding or unknown.
Tokenization runs once per (tokenizer, fields, max_len, rows) and is cached on disk.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import LOCALES
from .io import disk_cached

LOCALE_IDS = {loc: i + 1 for i, loc in enumerate(LOCALES)}


def product_text(df: pd.DataFrame, fields: list[str], sep: str) -> list[str]:
    """Non-empty fields in the configured order, joined by the tokenizer's separator token."""
    cols = [df[f].to_numpy() for f in fields]
    return [f" {sep} ".join(v for v in vals if v) for vals in zip(*cols)]


def char_ngrams(text: str, n: int = 3) -> list[str]:
    """All n-grams of the lower-cased text, the last one included; a shorter non-empty text is one gram."""
    t = text.lower()
    if not t:
        return []
    return [t] if len(t) < n else [t[i:i + n] for i in range(len(t) - n + 1)]


def unit_texts(df: pd.DataFrame) -> list[list[str]]:
    """The three semantic units of each row: query, title+brand+color+bullets, description."""
    mid = (df.title + " " + df.brand + " " + df.color + " " + df.bullets).str.strip()
    return [df["query"].tolist(), mid.tolist(), df.description.tolist()]


def build_vocab(values, min_count: int, max_size: int = 0) -> dict[str, int]:
    counts = Counter(v for v in values if v)
    kept = sorted((c, v) for v, c in counts.items() if c >= min_count)
    kept = sorted(kept, key=lambda cv: (-cv[0], cv[1]))
    if max_size:
        kept = kept[:max_size]
    return {v: i + 1 for i, (_, v) in enumerate(kept)}


def norm_value(s: pd.Series) -> pd.Series:
    return s.str.lower().str.strip()


@dataclass
class Vocabs:
    ngrams: dict
    brand: dict
    color: dict

    @classmethod
    def build(cls, train: pd.DataFrame, cfg) -> "Vocabs":
        grams = (g for unit in unit_texts(train) for t in unit for g in char_ngrams(t)) if cfg.use_units else ()
        return cls(build_vocab(grams, cfg.ngram_min_count, cfg.ngram_max_vocab),
                   build_vocab(norm_value(train.brand), cfg.id_min_count),
                   build_vocab(norm_value(train.color), cfg.id_min_count))

    def save(self, path) -> None:
        Path(path).write_text(json.dumps({"ngrams": self.ngrams, "brand": self.brand, "color": self.color},
                                         ensure_ascii=False))

    @classmethod
    def load(cls, path) -> "Vocabs":
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class Features:
    example_id: np.ndarray
    input_ids: list            # np.int32 arrays, unpadded
    token_type_ids: list | None
    bags: list                 # 3 lists of np.int64 arrays of 3-gram ids
    ids: np.ndarray            # (n, 3) locale, brand, color
    lengths: np.ndarray

    def __len__(self):
        return len(self.input_ids)


def _tokenize(tokenizer, df, cfg, cache_dir: Path | None):
    def build():
        enc = tokenizer(df["query"].tolist(), product_text(df, cfg.fields, tokenizer.sep_token or "|"),
                        truncation="longest_first", max_length=cfg.max_len)
        return {"input_ids": [np.asarray(x, dtype=np.int32) for x in enc["input_ids"]],
                "token_type_ids": [np.asarray(x, dtype=np.int8) for x in enc["token_type_ids"]]
                if "token_type_ids" in enc else None}

    key = [getattr(tokenizer, "name_or_path", ""), len(tokenizer), cfg.fields, cfg.max_len, df.example_id.tolist(),
           df["query"].str.len().sum().item(), df.title.str.len().sum().item()]
    return disk_cached(cache_dir, "tok", key, build)


def featurize(df: pd.DataFrame, tokenizer, vocabs: Vocabs, cfg, cache_dir: Path | None = None) -> Features:
    tok = _tokenize(tokenizer, df, cfg, cache_dir)
    if cfg.use_units:
        bags = [[np.asarray([i for g in char_ngrams(t) if (i := vocabs.ngrams.get(g, 0))], dtype=np.int64)
                 for t in unit] for unit in unit_texts(df)]
    else:
        bags = [[np.zeros(0, np.int64)] * len(df)] * 3
    ids = np.stack([df.product_locale.map(LOCALE_IDS).fillna(0).to_numpy(np.int64),
                    norm_value(df.brand).map(vocabs.brand).fillna(0).to_numpy(np.int64),
                    norm_value(df.color).map(vocabs.color).fillna(0).to_numpy(np.int64)], axis=1)
    return Features(df.example_id.to_numpy(), tok["input_ids"], tok["token_type_ids"], bags, ids,
                    np.array([len(x) for x in tok["input_ids"]]))
