"""The Figure 2 cross-encoder: encoder [CLS] + char 3-gram bags + ID embeddings -> MLP head.

In: an encoder (esci.encoder.load_encoder), the number of 3-gram hash buckets and of brand/color ids, and the
config. Out: `CrossEncoder`, whose forward takes a collated batch and returns logits (cls4: 4, cls2: 2, reg: 1);
`seed_id_tables()` (with provenance.pretrained_dir) starts fine-tuning from a pre-training run (esci.pretrain's
output).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from . import EsciError
from .io import load_torch
from .tasks import HEADS

log = logging.getLogger("esci")


class CrossEncoder(nn.Module):
    def __init__(self, encoder: nn.Module, cfg, n_ngrams: int, n_brands: int, n_colors: int):
        super().__init__()
        self.encoder = encoder
        self.use_units, self.use_ids = cfg.use_units, cfg.use_ids
        hidden = encoder.config.hidden_size
        width = hidden
        if self.use_units:
            # one table, three bags: query / title+brand+color+bullets / description
            self.bag = nn.EmbeddingBag(n_ngrams + 1, cfg.unit_dim, mode="mean", padding_idx=0)
            self.unit_match = cfg.unit_match
            width += (5 if self.unit_match else 3) * cfg.unit_dim + (2 if self.unit_match else 0)
        if self.use_ids:
            self.locale = nn.Embedding(8, cfg.locale_dim)
            self.brand = nn.Embedding(n_brands + 1, cfg.id_dim, padding_idx=0)
            self.color = nn.Embedding(n_colors + 1, cfg.id_dim, padding_idx=0)
            width += cfg.locale_dim + 2 * cfg.id_dim
        self.head = nn.Sequential(nn.Dropout(cfg.head_dropout), nn.Linear(width, hidden), nn.Tanh(),
                                  nn.Dropout(cfg.head_dropout), nn.Linear(hidden, HEADS[cfg.head].n_out))

    def word_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    def features(self, batch: dict) -> torch.Tensor:
        kw = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        out = [self.encoder(**kw).last_hidden_state[:, 0]]
        if self.use_units:
            q, t, d = (self.bag(batch[f"bag{i}"], batch[f"bag{i}_offsets"]) for i in range(3))
            out += [q, t, d] + ([q * t, q * d, batch["overlap"]] if self.unit_match else [])
        if self.use_ids:
            ids = batch["ids"]
            out += [self.locale(ids[:, 0]), self.brand(ids[:, 1]), self.color(ids[:, 2])]
        return torch.cat([o.float() for o in out], dim=-1)

    def forward(self, batch: dict, mix: tuple | None = None) -> torch.Tensor:
        h = self.features(batch)
        if mix is not None:
            lam, perm = mix
            h = lam * h + (1 - lam) * h[perm]
        return self.head(h)

    def param_groups(self, cfg) -> list[dict]:
        """Encoder at lr, the rest at head_lr; no decay on biases and norms."""
        groups = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            lr = cfg.lr if name.startswith("encoder.") else cfg.head_lr
            decay = 0.0 if p.ndim < 2 or "norm" in name.lower() else cfg.weight_decay
            groups.setdefault((lr, decay), []).append(p)
        return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def seed_id_tables(model: nn.Module, vocabs: dict, path: Path) -> None:
    """Copy pre-trained brand/color rows into the fine-tuning model's ID embeddings, matched by normalized value
    (vocabs: brand / color -> {value: id}, the unit store's)."""
    tables = load_torch(path)
    for name in ("brand", "color"):
        emb, t = getattr(model, name), tables[name]
        if t["weight"].shape[1] != emb.embedding_dim:
            raise EsciError(f"{path}: {name} table has dim {t['weight'].shape[1]}, the fine-tuning config has "
                             f"id_dim={emb.embedding_dim}; fix: use the id_dim of the pre-training run")
        pairs = torch.tensor([(i, t["vocab"][v]) for v, i in vocabs[name].items() if v in t["vocab"]],
                             dtype=torch.long).reshape(-1, 2)
        with torch.no_grad():
            emb.weight[pairs[:, 0]] = t["weight"][pairs[:, 1]]
        log.info("%s ID embeddings: %d of %d values seeded from %s", name, len(pairs), len(vocabs[name]), path)
