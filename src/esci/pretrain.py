"""Multi-task pre-training of the encoder on the product catalog (paper Figure 1, Algorithm 1).

In: a config (the pt_* keys of configs/base.py) and the prepared catalog (output/<profile>/data/products.parquet).
The corpora are data (esci.corpora): the catalog tokenized once per (catalog, tokenizer, pt_max_len, seed) into flat
arrays that every run and rank reads memory-mapped; a `pt_holdout` share of the products is held out for evaluation:
  mlm     product text `locale | title | brand | color | bullets | description`, each product's cut to pt_max_len
          tokens (as every task reads it), joined per locale and cut into blocks of pt_max_len;
          15% of tokens masked (80% [MASK], 10% random, 10% kept); the head is the checkpoint's own masked-LM head
          where its weights hold one (InfoXLM's lm_head, BERT's cls, DeBERTa-v3's lm_predictions), continued at
          pt_lr, else a new head of the family's kind at pt_head_lr; the log says which
  p2q     Product2Query: a fake query of 1-2 character spans of title+brand+color (span length from a truncated
          Poisson, mean per locale) paired with its product (label 1), and the locale's fake queries permuted so
          that none meets its own product (label 0)
  attr    Product2Brand and Product2Color on `locale | title | bullets | description`: classes are normalized
          values seen more than once; missing or rare values are ignored (-100); rows with neither are dropped
  simcse  two dropout passes of the product text; in-batch negatives at temperature pt_temperature
Every epoch shuffles the batches of all enabled tasks into one stream (Algorithm 1); each batch adds its task's
weighted loss on the shared loop of esci.loop (EMA, resume, accumulation). The best weights by held-out MLM loss
are kept.
Out: output/<profile>/<name>/ with encoder/ (save_pretrained: config, safetensors, tokenizer), id_tables.pt
(brand/color tables and their value vocabularies, which seed fine-tuning's ID embeddings), config.json,
metrics.json (written last: held-out MLM loss and accuracies at the start and after every epoch).
A fine-tuning config starts from it with init_from="<name>".
"""
from __future__ import annotations

import logging
import math
import resource
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import get_cosine_schedule_with_warmup

from . import EsciError
from .corpora import IGNORE, VERSION as CORPORA_VERSION, corpora
from .encoder import check_fits, load_encoder, load_masked_lm, load_tokenizer
from .io import atomic_path, load_torch, read_json, write_json
from .loop import EMA, Loop, adamw, batch_order, make_accelerator, seed_all, shard
from .prepare import prepare
from .provenance import begin, data_identity, fingerprint, record

log = logging.getLogger("esci")

LOSSES = ("mlm", "p2q", "brand", "color", "simcse")  # the keys of pt_weights
MLM_HEAD = 2  # the masked-LM head's version in a run's fingerprint: 2 = the family's own head (continued or new)


@dataclass
class TaskBatch:
    task: str
    rows: np.ndarray

    def __len__(self):
        return len(self.rows)


def mask_tokens(ids: torch.Tensor, special: torch.Tensor, tokenizer, prob: float, generator=None):
    """BERT masking: `prob` of the non-special tokens are targets; 80% -> [MASK], 10% random, 10% kept."""
    labels = ids.clone()
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & ~special
    labels[~chosen] = IGNORE
    ids = ids.clone()
    r = torch.rand(ids.shape, generator=generator)
    ids[chosen & (r < 0.8)] = tokenizer.mask_token_id
    rand = chosen & (r >= 0.8) & (r < 0.9)
    ids[rand] = torch.randint(len(tokenizer), ids.shape, generator=generator)[rand]
    return ids, labels


class PretrainModel(nn.Module):
    """The shared encoder with a masked-LM head (the checkpoint's own where it has one: esci.encoder.load_masked_lm),
    a Product2Query head, brand and color heads scored against ID tables, and the SimCSE projection."""

    def __init__(self, encoder: nn.Module, mlm_head: nn.Module, cfg, n_brands: int, n_colors: int):
        super().__init__()
        self.encoder = encoder
        h = encoder.config.hidden_size
        self.mlm_head = mlm_head
        self.p2q = nn.Sequential(nn.Dropout(0.1), nn.Linear(h, 2))
        self.brand_proj, self.color_proj = nn.Linear(h, cfg.id_dim), nn.Linear(h, cfg.id_dim)
        # same shape and init as the fine-tuning ID embeddings they seed
        self.brand_table = nn.Embedding(max(n_brands, 1), cfg.id_dim)
        self.color_table = nn.Embedding(max(n_colors, 1), cfg.id_dim)
        self.sim = nn.Sequential(nn.Linear(h, h), nn.Tanh())
        self.weights = {**dict.fromkeys(LOSSES, 1.0), **cfg.pt_weights}
        self.temperature = cfg.pt_temperature

    def _hidden(self, batch):
        kw = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
        return self.encoder(**kw).last_hidden_state

    def forward(self, task: str, batch: dict) -> tuple[torch.Tensor, dict]:
        """(weighted loss, {name: (correct or summed loss, count)}) for one task's batch."""
        if task == "mlm":
            labels = batch["labels"]
            hidden = self._hidden(batch)
            h = hidden[labels != IGNORE]
            if len(h) == 0:  # nothing masked in this batch
                return hidden.sum() * 0, {}
            loss = F.cross_entropy(self.mlm_head(h).float(), labels[labels != IGNORE])
            return self.weights["mlm"] * loss, {"mlm_loss": (loss.item() * len(h), len(h))}
        if task == "p2q":
            logits = self.p2q(self._hidden(batch)[:, 0].float())
            loss = F.cross_entropy(logits, batch["labels"])
            return self.weights["p2q"] * loss, {"p2q_acc": ((logits.argmax(-1) == batch["labels"]).sum().item(),
                                                            len(logits))}
        if task == "attr":
            cls = self._hidden(batch)[:, 0].float()
            total, stats = 0.0, {}
            for k, (name, proj, table) in enumerate((("brand", self.brand_proj, self.brand_table),
                                                     ("color", self.color_proj, self.color_table))):
                y = batch["labels"][:, k]
                ok = y != IGNORE
                if not ok.any():
                    continue
                logits = proj(cls[ok]) @ table.weight.T
                total = total + self.weights[name] * F.cross_entropy(logits, y[ok])
                stats[f"{name}_acc"] = ((logits.argmax(-1) == y[ok]).sum().item(), int(ok.sum()))
            return total, stats
        if task == "simcse":
            double = {k: torch.cat([v, v]) for k, v in batch.items() if k != "labels"}
            a, b = F.normalize(self.sim(self._hidden(double)[:, 0].float()), dim=-1).chunk(2)
            logits = a @ b.T / self.temperature
            loss = F.cross_entropy(logits, torch.arange(len(a), device=a.device))
            return self.weights["simcse"] * loss, {"simcse_loss": (loss.item() * len(a), len(a))}
        raise ValueError(f"unknown pre-training task {task!r}")


def is_complete(cfg) -> bool:
    return (cfg.run_dir / "metrics.json").exists()


@torch.no_grad()
def evaluate(model, held: dict, cfg, tokenizer, accelerator, special_ids: torch.Tensor) -> dict:
    """Held-out MLM loss (fixed masks) and accuracies of Product2Query, brand and color."""
    model.eval()
    sums: dict = {}
    gen = torch.Generator().manual_seed(cfg.seed)
    for task, c in held.items():
        if task == "simcse" or len(c) == 0:
            continue
        order = np.argsort(c.lengths, kind="stable")
        for s in range(0, len(c), cfg.eval_batch_size):
            batch = c.batch(order[s:s + cfg.eval_batch_size], cfg.pad_multiple)
            if task == "mlm":
                batch["input_ids"], batch["labels"] = mask_tokens(batch["input_ids"],
                                                                  torch.isin(batch["input_ids"], special_ids),
                                                                  tokenizer, cfg.pt_mask_prob, gen)
                if not (batch["labels"] != IGNORE).any():
                    continue
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.autocast():
                _, stats = model(task, batch)
            for name, (v, n) in stats.items():
                a, b = sums.get(name, (0.0, 0))
                sums[name] = (a + v, b + n)
    model.train()
    return {name: round(v / max(n, 1), 5) for name, (v, n) in sums.items()}


# what a pre-training run depends on besides the data (fine-tuning keys such as lr or epochs do not count)
PRETRAIN_KEYS = ["seed", "model_dir", "id_dim", "warmup_ratio", "max_grad_norm", "precision", "pad_multiple", "bucket"]


def pretrain_fingerprint(cfg) -> dict:
    unknown = set(cfg.pt_weights) - set(LOSSES)
    if unknown or not all(isinstance(w, (int, float)) for w in cfg.pt_weights.values()):
        raise EsciError(f"pt_weights={cfg.pt_weights}: keys must be among {', '.join(LOSSES)} with numbers as "
                        f"values (unknown: {sorted(unknown)}); fix: e.g. pt_weights={{'mlm': 1.0, 'p2q': 2.0}}")
    prepare(cfg)
    return fingerprint(cfg, PRETRAIN_KEYS + [k for k in cfg if k.startswith("pt_")], data=data_identity(cfg),
                       corpora=CORPORA_VERSION, mlm_head=MLM_HEAD)


def pretrain(cfg) -> dict:
    out = cfg.run_dir
    fp = pretrain_fingerprint(cfg)
    if begin(out, fp, cfg.force, is_complete(cfg)):
        log.info("%s is complete; skipping", out)
        return read_json(out / "metrics.json")
    accelerator = make_accelerator(cfg, find_unused=True, out=out)
    accelerator.wait_for_everyone()
    seed_all(cfg.seed + accelerator.process_index)
    if not any(cfg[f"pt_{t}"] for t in LOSSES):
        raise EsciError(f"{cfg.name}: every pre-training task is switched off; fix: enable one of pt_mlm, pt_p2q, "
                        f"pt_brand, pt_color, pt_simcse")
    tokenizer = load_tokenizer(cfg.model_dir, cfg.encoders_root)
    check_fits(cfg, tokenizer, "pt_max_len")
    fit, held, vocabs = corpora(cfg, tokenizer)
    log.info("pre-training rows (fit / held out): %s; %d brands, %d colors; peak memory so far %.2f GiB",
             {t: (len(fit[t]), len(held[t])) for t in fit}, len(vocabs["brand"]), len(vocabs["color"]),
             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    if cfg.pt_mlm:
        encoder, mlm_head, continued = load_masked_lm(cfg.model_dir, len(tokenizer), cfg.encoders_root)
        log.info("masked-LM head: %s", f"the checkpoint's own ({continued}), continued" if continued else
                 "new (the checkpoint's weights hold none, as in a sentence-transformers folder)")
    else:
        encoder, mlm_head, continued = load_encoder(cfg.model_dir, len(tokenizer), cfg.encoders_root), None, None
    model = PretrainModel(encoder, mlm_head, cfg, len(vocabs["brand"]), len(vocabs["color"]))
    if cfg.compile:
        model.encoder = torch.compile(model.encoder, dynamic=True)
    special_ids = torch.tensor(tokenizer.all_special_ids)

    def batches_for(epoch: int) -> list[TaskBatch]:
        """Algorithm 1: every task's (bucketed) batches, shuffled together into one stream."""
        stream = [TaskBatch(t, rows) for i, t in enumerate(sorted(fit))
                  for rows in batch_order(fit[t].lengths, cfg.pt_batch_size, cfg.seed * 7919 + epoch * 13 + i,
                                          cfg.bucket)]
        order = np.random.default_rng(cfg.seed * 31 + epoch).permutation(len(stream))
        return shard([stream[i] for i in order], accelerator)

    total_steps = math.ceil(sum(math.ceil(len(c) / cfg.pt_batch_size) for c in fit.values())
                            / accelerator.num_processes / cfg.pt_grad_accum) * cfg.pt_epochs
    total_steps = min(total_steps, cfg.pt_max_steps or total_steps)
    trained = ("encoder.", "mlm_head.") if continued else ("encoder.",)  # a continued head keeps the encoder's lr
    optimizer = adamw([{"params": [p for n, p in model.named_parameters() if n.startswith(trained)],
                        "lr": cfg.pt_lr},
                       {"params": [p for n, p in model.named_parameters() if not n.startswith(trained)],
                        "lr": cfg.pt_head_lr}])
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    loop = Loop(accelerator, model, optimizer, scheduler, EMA(raw, cfg.pt_ema_decay) if cfg.pt_ema else None, out,
                grad_accum=cfg.pt_grad_accum, max_grad_norm=cfg.max_grad_norm, save_every=cfg.save_every,
                log_every=cfg.log_every, max_steps=cfg.pt_max_steps, name=f"{cfg.name} pre-train")
    loop.resume()
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.json")
        record(out, fp)

    def score():
        info = evaluate(model, held, cfg, tokenizer, accelerator, special_ids)
        return (-info["mlm_loss"] if "mlm_loss" in info else float("nan")), info

    def save_best():
        if accelerator.is_main_process:
            with atomic_path(out / "best.pt") as tmp:
                torch.save(loop.best_weights(), tmp)

    def loss_of(item: TaskBatch):
        batch = fit[item.task].batch(item.rows, cfg.pad_multiple)
        if item.task == "mlm":
            batch["input_ids"], batch["labels"] = mask_tokens(batch["input_ids"],
                                                              torch.isin(batch["input_ids"], special_ids),
                                                              tokenizer, cfg.pt_mask_prob)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            loss, _ = model(item.task, batch)
        return loss, batch, {item.task: loss.detach()}

    if not loop.progress["history"]:
        loop.record(-1, score, save_best)  # the starting point: "before" figures and the fallback weights
    progress = loop.run(cfg.pt_epochs, batches_for, loss_of, score, save_best, tag_of=lambda item: item.task)

    raw.load_state_dict(load_torch(out / "best.pt"))
    if accelerator.is_main_process:
        encoder = raw.encoder._orig_mod if hasattr(raw.encoder, "_orig_mod") else raw.encoder
        with atomic_path(out / "encoder", is_dir=True) as tmp:
            encoder.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        with atomic_path(out / "id_tables.pt") as tmp:
            torch.save({name: {"vocab": vocabs[name], "weight": getattr(raw, f"{name}_table").weight.detach().cpu()
                               [:len(vocabs[name])]} for name in ("brand", "color")}, tmp)
        history = progress["history"]
        metrics = {"name": cfg.name, "start": history[0], "best": history[progress.get("best_at", -1)],
                   "history": history, "steps": progress["step"], "train_s": round(progress["seconds"], 1),
                   "rows": {t: [len(fit[t]), len(held[t])] for t in fit}}
        if torch.cuda.is_available():
            metrics["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
        write_json(metrics, out / "metrics.json")
        (out / "best.pt").unlink()  # exported above
        log.info("pre-training done: start %s, best %s", metrics["start"], metrics["best"])
    loop.finish()
    accelerator.wait_for_everyone()
    return read_json(out / "metrics.json")
