"""One fine-tuning loop for every task and head: fold k (or a full fit), with EMA, FGM, R-Drop, mixup, Poly-1,
gradient accumulation, bucketed batches, mixed precision, Accelerate for several processes, and resume.

In: a config and a fold (-1 = full fit on all training rows), the prepared tables of the task.
Out: output/<profile>/<name>/fold<k>/ with config.json, vocabs.json, best.pt (weights used for prediction; EMA
weights when EMA is on), oof.parquet (the fold's rows), test.parquet, metrics.json (written last: marks the fold
complete). state.pt holds model, optimizer, scheduler, EMA, progress and RNG state for resuming; it is removed
once the fold is complete.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import gather_object
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from .io import atomic_path, write_json, write_parquet
from .model import CrossEncoder, load_encoder, load_tokenizer
from .prepare import load_prepared
from .tasks import METRIC_NAME, outputs_frame, targets, task_metric
from .text import Features, Vocabs, featurize

log = logging.getLogger("esci")


def fold_dir(cfg, fold: int) -> Path:
    return cfg.run_dir / ("full" if fold < 0 else f"fold{fold}")


def is_complete(cfg, fold: int) -> bool:
    return (fold_dir(cfg, fold) / "metrics.json").exists()


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batch_order(lengths: np.ndarray, batch_size: int, seed: int, bucket: bool) -> list[np.ndarray]:
    """Shuffled batches; with bucketing, rows are length-sorted inside random windows of 50 batches first."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(lengths))
    if bucket:
        win = batch_size * 50
        idx = np.concatenate([w[np.argsort(lengths[w], kind="stable")] for w in np.split(idx, range(win, len(idx), win))])
    batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(feats: Features, rows: np.ndarray, pad_id: int, pad_multiple: int, y=None, w=None) -> dict:
    n = max(int(feats.lengths[rows].max()), 1)
    n = int(math.ceil(n / pad_multiple) * pad_multiple)
    ids = np.full((len(rows), n), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), n), dtype=np.int64)
    tt = np.zeros((len(rows), n), dtype=np.int64) if feats.token_type_ids is not None else None
    for j, r in enumerate(rows):
        L = feats.lengths[r]
        ids[j, :L], mask[j, :L] = feats.input_ids[r], 1
        if tt is not None:
            tt[j, :L] = feats.token_type_ids[r]
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
             "ids": torch.from_numpy(feats.ids[rows])}
    if tt is not None:
        batch["token_type_ids"] = torch.from_numpy(tt)
    for i, bag in enumerate(feats.bags):
        parts = [bag[r] for r in rows]
        batch[f"bag{i}"] = torch.from_numpy(np.concatenate(parts) if parts else np.zeros(0, np.int64))
        batch[f"bag{i}_offsets"] = torch.from_numpy(np.cumsum([0] + [len(p) for p in parts[:-1]]))
    if y is not None:
        batch["y"], batch["w"] = torch.from_numpy(y[rows]), torch.from_numpy(w[rows])
    return batch


class EMA:
    """Shadow copy of the trainable weights; decay warms up as min(decay, (1+n)/(10+n))."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.n = decay, 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model):
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self):
        return {"n": self.n, "shadow": self.shadow}

    def load_state_dict(self, sd):
        self.n = sd["n"]
        for k, v in sd["shadow"].items():
            self.shadow[k].copy_(v)


def task_loss(cfg, logits, y, w, soft=None):
    """Weighted mean over rows; soft = (y2, lam) mixes the targets for mixup."""
    if cfg.head == "reg":
        pred = logits[:, 0]
        target = y if soft is None else soft[1] * y + (1 - soft[1]) * soft[0]
        per_row = (pred - target) ** 2
    else:
        logp = logits.float().log_softmax(-1)
        onehot = F.one_hot(y, logits.shape[-1]).float()
        if soft is not None:
            onehot = soft[1] * onehot + (1 - soft[1]) * F.one_hot(soft[0], logits.shape[-1]).float()
        per_row = -(onehot * logp).sum(-1)
        if cfg.loss == "poly1":
            per_row = per_row + cfg.poly_eps * (1 - (onehot * logp.exp()).sum(-1))
    return (per_row * w).sum() / w.sum().clamp_min(1e-8)


def rdrop_term(cfg, a, b):
    """Symmetric KL between two dropout passes, mean over rows (MSE for regression heads)."""
    if cfg.head == "reg":
        return ((a - b) ** 2).mean()
    pa, pb = a.float().log_softmax(-1), b.float().log_softmax(-1)
    kl = F.kl_div(pa, pb, log_target=True, reduction="none").sum(-1) + \
        F.kl_div(pb, pa, log_target=True, reduction="none").sum(-1)
    return kl.mean() / 2


def compute_loss(cfg, model, batch):
    y, w = batch["y"], batch["w"]
    if cfg.mixup:
        lam = float(np.random.beta(cfg.mixup_alpha, cfg.mixup_alpha))
        perm = torch.randperm(len(y), device=y.device)
        logits = model(batch, mix=(lam, perm))
        return task_loss(cfg, logits, y, w, soft=(y[perm], lam))
    if cfg.rdrop:
        double = {k: v for k, v in batch.items() if not k.startswith("bag")}
        double = {k: torch.cat([v, v]) for k, v in double.items()}
        for i in range(3):
            bag, off = batch[f"bag{i}"], batch[f"bag{i}_offsets"]
            double[f"bag{i}"] = torch.cat([bag, bag])
            double[f"bag{i}_offsets"] = torch.cat([off, off + len(bag)])
        a, b = model(double).chunk(2)
        return (task_loss(cfg, a, y, w) + task_loss(cfg, b, y, w)) / 2 + cfg.rdrop_alpha * rdrop_term(cfg, a, b)
    return task_loss(cfg, model(batch), y, w)


def precision(cfg) -> str:
    if cfg.precision != "auto":
        return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[cfg.precision]
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


@torch.no_grad()
def predict(model, feats: Features, cfg, accelerator, pad_id: int, desc: str = "predict") -> torch.Tensor:
    """Outputs in row order; rows go length-sorted, batches are spread over processes and gathered."""
    model.eval()
    order = np.argsort(feats.lengths, kind="stable") if cfg.bucket else np.arange(len(feats))
    batches = [order[i:i + cfg.eval_batch_size] for i in range(0, len(order), cfg.eval_batch_size)]
    mine = batches[accelerator.process_index::accelerator.num_processes]
    results = []
    bar = tqdm(total=len(feats), desc=desc, unit="ex", disable=not accelerator.is_main_process, leave=False)
    for rows in mine:
        batch = {k: v.to(accelerator.device) for k, v in collate(feats, rows, pad_id, cfg.pad_multiple).items()}
        with accelerator.autocast():
            results.append((rows, model(batch).float().cpu()))
        bar.update(len(rows) * accelerator.num_processes)
    bar.close()
    if accelerator.num_processes > 1:
        results = gather_object(results)
    out = torch.zeros(len(feats), results[0][1].shape[1])
    for rows, o in results:
        out[torch.from_numpy(rows)] = o
    model.train()
    return out


def _rng_state():
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(s):
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])
    if s["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def _fail_point(step: int) -> None:
    """Fault injection for the resume test: ESCI_FAIL_AT_STEP=N exits abruptly after optimizer step N."""
    if os.environ.get("ESCI_FAIL_AT_STEP") == str(step):
        os._exit(3)


def train_fold(cfg, fold: int) -> dict:
    out = fold_dir(cfg, fold)
    if is_complete(cfg, fold):
        log.info("%s is complete; skipping", out)
        from .io import read_json
        return read_json(out / "metrics.json")
    accelerator = Accelerator(mixed_precision=precision(cfg), cpu=not torch.cuda.is_available())
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_all(cfg.seed + max(fold, 0) * 1000 + accelerator.process_index)
    train, test = load_prepared(cfg)
    if cfg.max_train_queries:
        keep = np.sort(train.query_id.unique())[:cfg.max_train_queries]
        train = train[train.query_id.isin(keep)].reset_index(drop=True)
    if cfg.max_test_rows:
        test = test.iloc[:cfg.max_test_rows].reset_index(drop=True)
    fit = train[train.fold != fold].reset_index(drop=True)
    val = train[train.fold == fold].reset_index(drop=True)
    if cfg.exclude_from:
        issues = pd.read_parquet(Path(cfg.output_dir) / cfg.profile / cfg.exclude_from / "label_issues.parquet")
        dropped = fit.example_id.isin(issues.example_id)
        log.info("fold %d: %d training rows dropped as label issues (from %s)", fold, int(dropped.sum()),
                 cfg.exclude_from)
        fit = fit[~dropped].reset_index(drop=True)

    tokenizer = load_tokenizer(cfg.model_dir)
    init = Path(cfg.output_dir) / cfg.profile / cfg.init_from / "encoder" if cfg.init_from else None
    encoder = load_encoder(str(init) if init else cfg.model_dir, len(tokenizer))
    vocabs = Vocabs.build(fit, cfg)
    cache = Path(cfg.output_dir) / cfg.profile / "cache"
    feats = {name: featurize(df, tokenizer, vocabs, cfg, cache) for name, df in
             (("fit", fit), ("val", val), ("test", test))}
    model = CrossEncoder(encoder, cfg, len(vocabs.ngrams), len(vocabs.brand), len(vocabs.color))
    if init is not None and (init.parent / "id_tables.pt").exists():
        from .pretrain import seed_id_tables
        seed_id_tables(model, vocabs, init.parent / "id_tables.pt")
    if cfg.compile:
        model.encoder = torch.compile(model.encoder, dynamic=True)
    y, w = targets(fit, cfg.head), fit.weight.to_numpy(np.float32)

    steps_per_epoch = math.ceil(len(fit) / cfg.batch_size / accelerator.num_processes / cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs
    fused = {"fused": True} if torch.cuda.is_available() else {}
    optimizer = torch.optim.AdamW(model.param_groups(cfg), **fused)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    ema = EMA(raw, cfg.ema_decay) if cfg.ema else None
    pad_id = tokenizer.pad_token_id or 0

    progress = {"epoch": 0, "micro": 0, "step": 0, "best": -math.inf, "history": []}
    state_path = out / "state.pt"
    if state_path.exists():
        st = torch.load(state_path, weights_only=False, map_location="cpu")
        raw.load_state_dict(st["model"])
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        if ema:
            ema.load_state_dict(st["ema"])
        progress = st["progress"]
        _set_rng_state(st["rng"][accelerator.process_index])
        log.info("fold %d: resumed at epoch %d, step %d (best %s %.4f)", fold, progress["epoch"],
                 progress["step"], METRIC_NAME[cfg.task], progress["best"])
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.json")
        vocabs.save(out / "vocabs.json")

    def eval_weights():
        return contextlib.nullcontext() if ema is None else _swapped(raw, ema.shadow)

    def evaluate() -> float:
        if len(val) == 0:
            return float("nan")
        with eval_weights():
            o = predict(model, feats["val"], cfg, accelerator, pad_id, "validate")
        return task_metric(cfg.task, val.merge(outputs_frame(cfg.head, val.example_id.to_numpy(), o),
                                               on="example_id", validate="one_to_one"))

    def save_state():
        rngs = gather_object([_rng_state()]) if accelerator.num_processes > 1 else [_rng_state()]
        if accelerator.is_main_process:
            with atomic_path(state_path) as tmp:
                torch.save({"model": raw.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "ema": ema.state_dict() if ema else None,
                            "progress": progress, "rng": rngs}, tmp)
        accelerator.wait_for_everyone()

    def save_best():
        if accelerator.is_main_process:
            weights = ema.shadow if ema else raw.state_dict()
            with atomic_path(out / "best.pt") as tmp:
                torch.save(weights, tmp)

    n_micro = None
    for epoch in range(progress["epoch"], cfg.epochs):
        batches = batch_order(feats["fit"].lengths, cfg.batch_size, cfg.seed * 7919 + epoch + 31 * max(fold, 0),
                              cfg.bucket)
        per_proc = len(batches) // accelerator.num_processes
        batches = batches[accelerator.process_index::accelerator.num_processes][:per_proc]
        n_micro = len(batches)
        eval_at = {int(round(n_micro * (i + 1) / cfg.evals_per_epoch)) for i in range(cfg.evals_per_epoch)}
        sizes = np.array([len(b) for b in batches]) * accelerator.num_processes
        bar = tqdm(total=int(sizes.sum()), initial=int(sizes[:progress["micro"]].sum()), unit="ex",
                   desc=f"fold {fold} epoch {epoch}", disable=not accelerator.is_main_process)
        for i in range(progress["micro"], n_micro):
            batch = {k: v.to(accelerator.device) for k, v in
                     collate(feats["fit"], batches[i], pad_id, cfg.pad_multiple, y, w).items()}
            last = (i + 1) % cfg.grad_accum == 0 or i + 1 == n_micro
            with contextlib.nullcontext() if last else accelerator.no_sync(model):
                loss = compute_loss(cfg, model, batch)
                accelerator.backward(loss / cfg.grad_accum)
                if cfg.fgm:
                    _fgm_step(cfg, model, raw, batch, accelerator)
            if last:
                if cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if ema:
                    ema.update(raw)
                progress["step"] += 1
            progress["micro"] = i + 1
            bar.update(len(batches[i]) * accelerator.num_processes)
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            if progress["micro"] in eval_at:
                metric = evaluate()
                progress["history"].append({"epoch": epoch, "step": progress["step"], METRIC_NAME[cfg.task]: metric})
                log.info("fold %d epoch %d step %d: val %s %.4f", fold, epoch, progress["step"],
                         METRIC_NAME[cfg.task], metric)
                if not metric <= progress["best"]:  # nan (no validation rows) keeps the latest weights
                    progress["best"] = metric
                    save_best()
            if last and (i + 1 == n_micro or (cfg.save_every and progress["step"] % cfg.save_every == 0)):
                if i + 1 == n_micro:
                    progress["epoch"], progress["micro"] = epoch + 1, 0
                save_state()
                _fail_point(progress["step"])
        bar.close()

    # predictions from the best weights, on every process's share, written by the main process
    raw.load_state_dict(torch.load(out / "best.pt", weights_only=True, map_location="cpu"))
    test_out = outputs_frame(cfg.head, test.example_id.to_numpy(),
                             predict(model, feats["test"], cfg, accelerator, pad_id, "test"))
    metrics = {"fold": fold, "task": cfg.task, "head": cfg.head, "train_rows": len(fit), "val_rows": len(val),
               "test_rows": len(test), "steps": progress["step"], "history": progress["history"]}
    if len(val):
        oof = outputs_frame(cfg.head, val.example_id.to_numpy(),
                            predict(model, feats["val"], cfg, accelerator, pad_id, "oof"))
        oof.insert(1, "fold", fold)
        metrics[METRIC_NAME[cfg.task]] = task_metric(cfg.task, val.merge(oof, on="example_id", validate="one_to_one"))
    if accelerator.is_main_process:
        if len(val):
            write_parquet(oof, out / "oof.parquet")
        write_parquet(test_out, out / "test.parquet")
        write_json(metrics, out / "metrics.json")
        state_path.unlink(missing_ok=True)
        log.info("fold %d done: %s", fold, {k: v for k, v in metrics.items() if k != "history"})
    accelerator.wait_for_everyone()
    return metrics


@contextlib.contextmanager
def _swapped(model, weights):
    backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(weights)
    try:
        yield
    finally:
        model.load_state_dict(backup)


def _fgm_step(cfg, model, raw, batch, accelerator):
    """Fast Gradient Method: loss again with word embeddings moved by eps * g / ||g||, gradients added."""
    emb = raw.word_embeddings().weight
    if emb.grad is None:
        return
    norm = emb.grad.norm()
    if not torch.isfinite(norm) or norm == 0:
        return
    delta = cfg.fgm_eps * emb.grad / norm
    emb.data.add_(delta)
    accelerator.backward(compute_loss(cfg, model, batch) / cfg.grad_accum)
    emb.data.sub_(delta)
