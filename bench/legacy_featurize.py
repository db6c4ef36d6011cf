"""The first implementation's featurization (commit 120df99), kept only as the baseline bench/scale.py times.

Per fold it counted a Python vocabulary of char 3-grams over the fit rows, tokenized every (query, product) pair
whole, and built per-row int64 arrays of 3-gram ids; esci.features replaced it. Not used by the pipeline.
"""
from collections import Counter

import numpy as np


def _grams(text: str, n: int = 3) -> list[str]:
    t = text.lower()
    if not t:
        return []
    return [t] if len(t) < n else [t[i:i + n] for i in range(len(t) - n + 1)]


def _units(df) -> list[list[str]]:
    mid = (df.title + " " + df.brand + " " + df.color + " " + df.bullets).str.strip()
    return [df["query"].tolist(), mid.tolist(), df.description.tolist()]


def _vocab(values, min_count: int) -> dict:
    counts = Counter(v for v in values if v)
    kept = sorted(((c, v) for v, c in counts.items() if c >= min_count), key=lambda cv: (-cv[0], cv[1]))
    return {v: i + 1 for i, (_, v) in enumerate(kept)}


def vocab(df, min_count: int = 2) -> dict:
    """Vocabs.build: the Counter over every 3-gram of the fit rows."""
    return _vocab((g for unit in _units(df) for t in unit for g in _grams(t)), min_count)


def featurize(df, tokenizer, ngrams: dict, fields: list[str], max_len: int):
    """featurize: whole pairs tokenized, then per-row arrays of 3-gram ids."""
    sep = tokenizer.sep_token
    text = [f" {sep} ".join(v for v in vals if v) for vals in zip(*[df[f].to_numpy() for f in fields])]
    enc = tokenizer(df["query"].tolist(), text, truncation="longest_first", max_length=max_len)
    tokens = [np.asarray(x, dtype=np.int32) for x in enc["input_ids"]]
    bags = [[np.asarray([i for g in _grams(t) if (i := ngrams.get(g, 0))], dtype=np.int64) for t in unit]
            for unit in _units(df)]
    return tokens, bags
