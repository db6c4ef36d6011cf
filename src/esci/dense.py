"""Bi-encoder features: each query and each product text embedded once by a sentence encoder, and every judgement's
cosine of its query and product per text (the stack's inputs beside esci.lexical's; esci.stack adds their rank and
gaps within the query).

In: the prepared tables; cfg.bi_encoders (encoder folders, "" the packaged MiniLM), cfg.bi_fields, cfg.bi_max_len.
Out: output/<profile>/features/emb_<key>/ per (encoder, text, max_len): vectors.npy, a float16 row per query (text
"query") or product, the L2-normalized mean of the last layer's token states over the text with its special tokens
(sentence-transformers' pooling for MiniLM and all-mpnet-base-v2), and empty.npy (the text is empty; its row is
zero). Key: the encoder's weights and tokenizer, the prepared data, the text's fields, max_len, VERSION.
Texts (FIELDS): title; side = title brand color bullets (the cross-encoder's fields but the description); desc = the
description; title_desc = title and description (the zero-shot peer's). A text is its fields that hold some text in
the catalog: where those are another text's (side is the title in a catalog without brand, color and bullets), it
reads that text's store, and dense_features leaves out a text empty in every product or equal to one before it.
`dense_features(cfg)`: example_id and `<encoder>.cos_<text>` for every judgement (NaN where the product's text is
empty), from the stores in chunks of rows. Texts are embedded in order of length (a batch pads little), in chunks of
CHUNK texts (bounded memory), on the GPU in fp16 where there is one.
"""
from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from . import EsciError
from .config import encoder_name
from .encoder import content_key, load_encoder, load_tokenizer, model_config, ready, takes_types, weight_files
from .features import (_encoder, _strings, assemble, join_fields, made_once, pair_template, product_chunks,
                       tokenizer_fingerprint)
from .io import read_parquet, reading
from .prepare import check_prepared, filled
from .provenance import data_identity

log = logging.getLogger("esci")

VERSION = 1  # bump when what a store holds changes
FIELDS = {"title": ["title"], "side": ["title", "brand", "color", "bullets"], "desc": ["description"],
          "title_desc": ["title", "description"]}
CHUNK = 20000  # texts tokenized and embedded at a time
ROWS = 50000  # judgements per chunk of cosines


def _weights_key(model_dir: str) -> str:
    if model_dir == "tiny":
        return "tiny"
    path = ready(model_dir)
    return content_key(path, weight_files(path)[1])


def text_fields(cfg, field: str) -> tuple[str, list[str]]:
    """(the text whose store a text reads, its fields that hold some text in the prepared catalog)."""
    if field == "query":
        return field, []
    fields = filled(cfg, FIELDS[field])
    return next((f for f, v in FIELDS.items() if v == fields), field), fields


def _texts(cfg, field: str, fields: list[str]):
    """The text's rows as Arrow string arrays, in row order (queries by qidx, products by pidx)."""
    if field == "query":
        ex = read_parquet(cfg.data_root / "examples.parquet", columns=["qidx", "query"])
        yield _strings(ex.drop_duplicates("qidx").sort_values("qidx")["query"])
        return
    for chunk in product_chunks(cfg, fields):
        yield join_fields(chunk, fields, " ")


def _rows(cfg, field: str) -> int:
    if field == "query":
        return int(read_parquet(cfg.data_root / "examples.parquet", columns=["qidx"]).qidx.nunique())
    path = cfg.data_root / "products.parquet"
    with reading(path):
        return pq.ParquetFile(path).metadata.num_rows


class Embedder:
    """texts -> (float16 vectors, token counts): the encoder's pooled embeddings, longest texts batched first; an
    empty text's row is zero."""

    def __init__(self, model_dir: str, tokenizer, max_len: int, batch: int):
        self.template, self.types = pair_template(tokenizer, pair=False)
        self.use_types = takes_types(tokenizer, model_config(model_dir))
        self.tokenizer, self.batch, self.pad = tokenizer, batch, tokenizer.pad_token_id
        self.cap = max_len - sum(1 for t in self.template if t >= 0)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = load_encoder(model_dir, len(tokenizer) if model_dir == "tiny" else None).eval().to(self.device)
        self.model = model.half() if self.device.type == "cuda" else model
        self.dim = model.config.hidden_size

    @torch.inference_mode()
    def __call__(self, texts: list[str], bar=None) -> tuple[np.ndarray, np.ndarray]:
        with _encoder(self.tokenizer, self.cap) as encode:
            ids = encode(texts)
        lens = np.fromiter(map(len, ids), np.int64, len(ids))
        flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64, int(lens.sum()))
        starts = np.cumsum(lens) - lens
        out = np.zeros((len(ids), self.dim), np.float16)
        order = np.argsort(-lens, kind="stable")
        order = order[lens[order] > 0]
        for b in range(0, len(order), self.batch):
            sel = order[b:b + self.batch]
            batch = assemble(self.template, self.types, [(flat, starts[sel], lens[sel])], self.pad, 8,
                             self.use_types)
            batch = {k: v.to(self.device) for k, v in batch.items()}
            h = self.model(**batch).last_hidden_state.float()
            m = batch["attention_mask"].unsqueeze(-1).float()
            v = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
            out[sel] = v.cpu().numpy().astype(np.float16)
            if bar is not None:
                bar.update(len(sel))
        if bar is not None:
            bar.update(len(ids) - len(order))
        return out, lens


def _embed(cfg, model_dir: str, tokenizer, field: str, fields: list[str], tmp: Path) -> dict:
    embed = Embedder(model_dir, tokenizer, cfg.bi_max_len, cfg.bi_batch)
    n = _rows(cfg, field)
    vectors = np.lib.format.open_memmap(tmp / "vectors.npy", "w+", np.float16, (n, embed.dim))
    empty = np.zeros(n, bool)
    row = 0
    with tqdm(total=n, desc=f"embed {encoder_name(model_dir)} {field}", unit="text", mininterval=5) as bar:
        for texts in _texts(cfg, field, fields):
            for s in range(0, len(texts), CHUNK):
                v, lens = embed(texts.slice(s, CHUNK).to_pylist(), bar)
                vectors[row:row + len(v)] = v
                empty[row:row + len(v)] = lens == 0
                row += len(v)
    vectors.flush()
    del vectors
    np.save(tmp / "empty.npy", empty)
    return {"encoder": str(model_dir) or "minilm", "field": field, "fields": fields or ["query"],
            "max_len": cfg.bi_max_len, "rows": n, "empty": int(empty.sum())}


def embeddings(cfg, model_dir: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, empty) of one text, memory-mapped: read from its store, or made once."""
    check_prepared(cfg)
    field, fields = text_fields(cfg, field)
    if field != "query" and not fields:
        raise EsciError(f"{cfg.data_root / 'products.parquet'}: no product has any of {FIELDS[field]}; fix: leave "
                        f"{field!r} out of bi_fields")
    tokenizer = load_tokenizer(model_dir)
    parts = [VERSION, field, fields, cfg.bi_max_len, _weights_key(model_dir),
             tokenizer_fingerprint(model_dir, tokenizer), data_identity(cfg)]
    folder, built = made_once(cfg, "emb", parts, lambda tmp: _embed(cfg, model_dir, tokenizer, field, fields, tmp))
    if built:
        log.info("bi-encoder store %s: %s %s", folder.name, encoder_name(model_dir), field)
    return (np.load(folder / "vectors.npy", mmap_mode="r"), np.load(folder / "empty.npy"))


def cosines(cfg, model_dir: str, field: str, qidx: np.ndarray, pidx: np.ndarray) -> np.ndarray:
    """The cosine of query qidx[i] and product pidx[i]'s text for every i (NaN where that text is empty)."""
    q, _ = embeddings(cfg, model_dir, "query")
    p, empty = embeddings(cfg, model_dir, field)
    out = np.empty(len(qidx), np.float32)
    for s in range(0, len(qidx), ROWS):
        a = np.asarray(q[qidx[s:s + ROWS]], np.float32)
        b = np.asarray(p[pidx[s:s + ROWS]], np.float32)
        out[s:s + ROWS] = np.einsum("ij,ij->i", a, b)
    out[empty[pidx]] = np.nan
    return out


def dense_features(cfg, encoders: list[str] | None = None, fields: list[str] | None = None) -> pd.DataFrame:
    """example_id and `<encoder>.cos_<text>` of every prepared judgement (default: cfg's bi_encoders and
    bi_fields)."""
    fields = cfg.bi_fields if fields is None else fields
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise EsciError(f"bi_fields: unknown text {unknown}; fix: choose from {list(FIELDS)}")
    texts = {}
    for field in fields:
        store, held = text_fields(cfg, field)
        if held and store not in texts.values():
            texts[field] = store
        else:
            log.info("bi-encoder text %s left out: %s", field, "the same as an earlier one's" if held else
                     f"no product has any of {FIELDS[field]}")
    ex = read_parquet(cfg.data_root / "examples.parquet", columns=["example_id", "qidx", "pidx"])
    qidx, pidx = ex.qidx.to_numpy(), ex.pidx.to_numpy()
    out = {"example_id": ex.example_id.to_numpy()}
    for model_dir in cfg.bi_encoders if encoders is None else encoders:
        for field in texts:
            out[f"{encoder_name(model_dir)}.cos_{field}"] = cosines(cfg, model_dir, field, qidx, pidx)
    return pd.DataFrame(out)

