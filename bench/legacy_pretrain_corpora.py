"""The first implementation's pre-training corpora (commit 0be81f6), kept only as the baseline bench/scale.py times.

Per run it tokenized the catalog three times (MLM text, Product2Query pairs with the whole product text again,
SimCSE), drew fake queries per product in Python, joined each locale's MLM stream as a list of Python ints over
every product, and kept each corpus row as its own numpy array; esci.corpora replaced it. Not used by the pipeline.
"""
import numpy as np
import pandas as pd

from esci.corpora import IGNORE, SPAN_LOCALES
from esci.features import join_fields, norm_value, value_ids

MLM_FIELDS = ["locale", "title", "brand", "color", "bullets", "description"]
ATTR_FIELDS = ["locale", "title", "bullets", "description"]


def _text(df, fields):
    return join_fields(df, fields, " | ").to_pylist()


def _poisson(rng, mean, high):
    for _ in range(20):
        k = int(rng.poisson(mean))
        if 1 <= k <= high:
            return k
    return int(min(max(k, 1), high))


def _fake_query(text, mean, rng):
    spans = []
    for _ in range(int(rng.integers(1, 3)) if text else 0):
        n = _poisson(rng, mean, len(text))
        start = int(rng.integers(0, len(text) - n + 1))
        spans.append(text[start:start + n])
    return spans


def _tok(tokenizer, first, second=None, max_len=256):
    enc = tokenizer(first, second, truncation="longest_first" if second is not None else True, max_length=max_len)
    return [np.asarray(x, np.int32) for x in enc["input_ids"]]


def build_corpora(df: pd.DataFrame, tokenizer, cfg, rng: np.random.Generator) -> dict:
    """The corpora of every task over df's products (columns locale, title, brand, color, bullets, description)."""
    text = _text(df, MLM_FIELDS)
    out = {}
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    locales = df.locale.tolist()
    blocks, step = [], cfg.pt_max_len - 2
    for loc in sorted(set(locales)):
        stream = [t for i, x in enumerate(ids) if locales[i] == loc for t in list(x) + [tokenizer.sep_token_id]]
        blocks += [np.asarray([tokenizer.cls_token_id] + stream[s:s + step] + [tokenizer.sep_token_id], np.int32)
                   for s in range(0, len(stream), step)]
    out["mlm"] = blocks
    source = (df.title + " " + df.brand + " " + df.color).str.strip()
    means = dict(zip(SPAN_LOCALES, cfg.pt_span_mean))
    spans = [_fake_query(t, means.get(loc, 4.0), rng) for t, loc in zip(source, df.locale)]
    rows = [(" ".join(s), i) for i, s in enumerate(spans) if s]
    for _, idx in sorted(df.groupby("locale").indices.items()):
        idx = np.array([i for i in idx if spans[i]])
        if len(idx) >= 2:
            order = idx[rng.permutation(len(idx))]
            rows += [(" ".join(spans[src]), dst) for dst, src in zip(order, np.roll(order, -1))]
    out["p2q"] = _tok(tokenizer, [q for q, _ in rows], [text[i] for _, i in rows], cfg.pt_max_len)
    labels = np.stack([norm_value(df[c]).map({v: i - 1 for v, i in value_ids(df[c], np.arange(len(df)), 2)[1]
                                              .items()}).fillna(IGNORE).to_numpy(np.int64)
                       for c in ("brand", "color")], axis=1)
    keep = (labels != IGNORE).any(axis=1)
    out["attr"] = _tok(tokenizer, [t for t, k in zip(_text(df, ATTR_FIELDS), keep) if k], max_len=cfg.pt_max_len)
    out["simcse"] = _tok(tokenizer, text, max_len=cfg.pt_max_len)
    return out
