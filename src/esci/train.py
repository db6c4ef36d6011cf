"""Fine-tuning for every task and head: fold k (or a full fit), with EMA, FGM, R-Drop, mixup, Poly-1,
bucketed batches, mixed precision and Accelerate for several processes, on the shared loop of esci.loop
(gradient accumulation, clipping, EMA updates, evaluation, resume).

In: a config and a fold (-1 = full fit on all training rows), the prepared tables and the feature stores
(esci.features, built on first use). The experiment's rows are its `rows` version (large by default, so one
4-class model covers every task's rows); the best checkpoint is chosen by its `task`'s metric on the validation
rows of that task.
Out: output/<profile>/<backbone>/<name>/fold<k>/ with config.json, fingerprint.json (what it was made from),
best.pt (weights used for prediction; EMA weights when EMA is on), oof.parquet (every validation row of the
experiment), test.parquet, metrics.json (written last: marks the fold complete; the fold's metrics for every task
the head serves, overall and per locale, and the feature stores used). state.pt holds model, optimizer,
scheduler, EMA, progress and RNG state for resuming; it is removed once the fold is complete.
"""
from __future__ import annotations

import logging
import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from accelerate.utils import gather_object
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from .encoder import check_fits, load_encoder, load_tokenizer
from .features import Features, features_for, token_store, unit_store
from .io import atomic_path, load_torch, read_json, read_parquet, write_json, write_parquet
from .loop import EMA, Loop, adamw, batch_order, make_accelerator, seed_all, shard
from .metrics import f1_report, ndcg_report
from .model import CrossEncoder, seed_id_tables
from .prepare import experiment_rows, load_examples
from .provenance import begin, fold_fingerprint, pretrained_dir, record
from .tasks import HEADS, METRIC_NAME, TASKS, outputs_frame, predicted_labels, targets, truth_labels

log = logging.getLogger("esci")


def collate(feats: Features, rows: np.ndarray, pad_multiple: int, y=None, w=None) -> dict:
    batch = feats.batch(rows, pad_multiple)
    if y is not None:
        batch["y"], batch["w"] = torch.from_numpy(y[rows]), torch.from_numpy(w[rows])
    return batch


def fold_metrics(head: str, rows: pd.DataFrame, pred: pd.DataFrame) -> dict:
    """The metric of every task the head serves, on the rows of that task among `rows` (labelled), overall and per
    locale; task 1 also the official scorer's nDCG (S and C gains swapped)."""
    df = rows.merge(pred, on="example_id", validate="one_to_one")
    out = {}
    for t in HEADS[head].serves:
        part = df[df[TASKS[t].version].eq(1)]
        if not len(part):
            continue
        if t == 1:
            report = ndcg_report(part)
        else:
            labelled = part.assign(pred=predicted_labels(t, part), truth=truth_labels(t, part))
            report = f1_report(labelled, "pred", "truth")
        out.update({f"task{t}_{k}": v for k, v in report.items()})
    return out


def task_loss(cfg, logits, y, w, soft=None):
    """Weighted mean over rows; soft = (y2, lam) mixes the targets for mixup."""
    if cfg.head == "reg":
        pred = logits[:, 0]
        target = y if soft is None else soft[1] * y + (1 - soft[1]) * soft[0]
        if cfg.loss == "bce":  # the official baseline's cross-encoder: the gain as a soft binary target
            per_row = F.binary_cross_entropy_with_logits(pred.float(), target.float(), reduction="none")
        else:
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


def compute_loss(cfg, model, batch, terms: dict | None = None):
    """The task loss with mixup (pooled features, soft targets) and/or R-Drop (one doubled forward); `terms`, when
    given, receives each part (detached) for the training log."""
    y, w = batch["y"], batch["w"]
    mix = soft = None
    if cfg.mixup:
        lam = float(np.random.beta(cfg.mixup_alpha, cfg.mixup_alpha))
        perm = torch.randperm(len(y), device=y.device)
        mix, soft = (lam, perm), (y[perm], lam)
    if not cfg.rdrop:
        loss = task_loss(cfg, model(batch, mix=mix), y, w, soft)
        if terms is not None:
            terms["task"] = loss.detach()
        return loss
    double = {k: torch.cat([v, v]) for k, v in batch.items() if not k.startswith("bag")}
    for k in [k for k in batch if k.startswith("bag") and not k.endswith("_offsets")]:
        bag, off = batch[k], batch[f"{k}_offsets"]
        double[k] = torch.cat([bag, bag])
        double[f"{k}_offsets"] = torch.cat([off, off + len(bag)])
    if mix is not None:  # the same mixing partners in both halves
        mix = (mix[0], torch.cat([mix[1], mix[1] + len(y)]))
    a, b = model(double, mix=mix).chunk(2)
    task, rdrop = (task_loss(cfg, a, y, w, soft) + task_loss(cfg, b, y, w, soft)) / 2, rdrop_term(cfg, a, b)
    if terms is not None:
        terms["task"], terms["rdrop"] = task.detach(), rdrop.detach()
    return task + cfg.rdrop_alpha * rdrop


@torch.no_grad()
def predict(model, feats: Features, cfg, accelerator, desc: str = "predict") -> torch.Tensor:
    """Outputs in row order; rows go length-sorted, batches are spread over processes and gathered."""
    if len(feats) == 0:
        return torch.zeros(0, HEADS[cfg.head].n_out)
    model.eval()
    order = np.argsort(feats.lengths, kind="stable") if cfg.bucket else np.arange(len(feats))
    batches = [order[i:i + cfg.eval_batch_size] for i in range(0, len(order), cfg.eval_batch_size)]
    mine = batches[accelerator.process_index::accelerator.num_processes]
    results = []
    bar = tqdm(total=len(feats), desc=desc, unit="ex", disable=not accelerator.is_main_process, leave=False)
    for rows in mine:
        batch = {k: v.to(accelerator.device) for k, v in feats.batch(rows, cfg.pad_multiple).items()}
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


class Setup(NamedTuple):
    fit: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    feats: dict          # fit / val / test -> Features
    model: CrossEncoder
    stores: dict         # the feature stores' folder names


def _setup(cfg, fold: int) -> Setup:
    """Fit/val/test rows, their features and the model (started from a pre-training run when init_from is set)."""
    train, test = experiment_rows(cfg, load_examples(cfg))
    fit = train[train.fold != fold].reset_index(drop=True)
    val = train[train.fold == fold].reset_index(drop=True)
    if cfg.exclude_from:
        issues = read_parquet(cfg.run_root / cfg.exclude_from / "label_issues.parquet")
        dropped = fit.example_id.isin(issues.example_id)
        log.info("fold %d: %d training rows dropped as label issues (from %s)", fold, int(dropped.sum()),
                 cfg.exclude_from)
        fit = fit[~dropped].reset_index(drop=True)
    tokenizer = load_tokenizer(cfg.model_dir, cfg.encoders_root)
    check_fits(cfg, tokenizer, "max_len")
    init = pretrained_dir(cfg)
    encoder = load_encoder(str(init / "encoder") if init else cfg.model_dir, len(tokenizer), cfg.encoders_root)
    if cfg.encoder_dropout >= 0:
        for m in encoder.modules():
            if isinstance(m, torch.nn.Dropout):  # hidden and attention dropout alike (attention reads its module's p)
                m.p = cfg.encoder_dropout
    tok = token_store(cfg, tokenizer)
    units = unit_store(cfg) if cfg.use_units or cfg.use_ids else None
    feats = {name: features_for(cfg, tokenizer, df, tok, units) for name, df in
             (("fit", fit), ("val", val), ("test", test))}
    n_brands, n_colors = (len(units.vocab["brand"]), len(units.vocab["color"])) if units else (0, 0)
    model = CrossEncoder(encoder, cfg, cfg.ngram_buckets, n_brands, n_colors)
    if init is not None and cfg.use_ids:
        seed_id_tables(model, units.vocab, init / "id_tables.pt")
    if cfg.compile:
        model.encoder = torch.compile(model.encoder, dynamic=True)
    stores = {"tokens": tok.folder.name, "units": units.folder.name if units else None}
    return Setup(fit, val, test, feats, model, stores)


def planned_epochs(cfg, rows: int) -> int:
    """cfg.epochs, cut to fit max_train_examples (epochs x rows) when it is set, never below one."""
    if not cfg.max_train_examples:
        return cfg.epochs
    return max(1, min(cfg.epochs, cfg.max_train_examples // max(rows, 1)))


def train_fold(cfg, fold: int) -> dict:
    out = cfg.fold_dir(fold)
    fp = fold_fingerprint(cfg)
    if begin(out, fp, cfg.force, cfg.fold_complete(fold)):
        log.info("%s is complete; skipping", out)
        return read_json(out / "metrics.json")
    accelerator = make_accelerator(cfg, out=out)
    accelerator.wait_for_everyone()  # a stale fold is removed before anyone writes
    seed = cfg.train_seed or cfg.seed
    seed_all(seed + max(fold, 0) * 1000 + accelerator.process_index)
    fit, val, test, feats, model, stores = _setup(cfg, fold)
    y, w = targets(fit, cfg.head), fit.weight.to_numpy(np.float32)

    epochs = planned_epochs(cfg, len(fit))
    if epochs < cfg.epochs:
        log.info("%s fold %d: %d epoch(s) over %d rows (max_train_examples=%d)", cfg.name, fold, epochs, len(fit),
                 cfg.max_train_examples)
    steps_per_epoch = math.ceil(len(fit) / cfg.batch_size / accelerator.num_processes / cfg.grad_accum)
    total_steps = min(steps_per_epoch * epochs, cfg.max_steps or steps_per_epoch * epochs)
    optimizer = adamw(model.param_groups(cfg))
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    loop = Loop(accelerator, model, optimizer, scheduler, EMA(raw, cfg.ema_decay) if cfg.ema else None, out,
                grad_accum=cfg.grad_accum, max_grad_norm=cfg.max_grad_norm, save_every=cfg.save_every,
                log_every=cfg.log_every, evals_per_epoch=cfg.evals_per_epoch, max_steps=cfg.max_steps,
                name=f"{cfg.name} fold {fold}")
    loop.resume()
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.json")
        record(out, fp)
    selects = f"task{cfg.task}_{METRIC_NAME[cfg.task]}"
    outputs = {}  # the validation outputs of the latest evaluation and of the kept weights: the OOF predictions

    def evaluate():
        if len(val) == 0:
            return float("nan"), {}
        outputs["latest"] = o = predict(model, feats["val"], cfg, accelerator, "validate")
        info = fold_metrics(cfg.head, val, outputs_frame(cfg.head, val.example_id.to_numpy(), o))
        return info.get(selects, float("nan")), info

    def save_best():
        outputs["best"] = outputs.get("latest")
        if accelerator.is_main_process:
            with atomic_path(out / "best.pt") as tmp:
                torch.save(loop.best_weights(), tmp)

    def batches_for(epoch):
        order = batch_order(feats["fit"].lengths, cfg.batch_size, seed * 7919 + epoch + 31 * max(fold, 0),
                            cfg.bucket)
        return shard(order, accelerator)

    def loss_of(rows):
        batch = {k: v.to(accelerator.device) for k, v in
                 collate(feats["fit"], rows, cfg.pad_multiple, y, w).items()}
        terms = {}
        return compute_loss(cfg, model, batch, terms), batch, terms

    fgm = (lambda batch: _fgm_step(cfg, model, raw, batch, accelerator)) if cfg.fgm else None
    progress = loop.run(epochs, batches_for, loss_of, evaluate, save_best, after_backward=fgm)

    # predictions from the best weights, on every process's share, written by the main process
    raw.load_state_dict(load_torch(out / "best.pt"))
    test_out = outputs_frame(cfg.head, test.example_id.to_numpy(),
                             predict(model, feats["test"], cfg, accelerator, "test"))
    metrics = {"fold": fold, "task": cfg.task, "head": cfg.head, "rows": cfg.rows, "train_rows": len(fit),
               "val_rows": len(val), "test_rows": len(test), "steps": progress["step"], "stores": stores,
               "train_s": round(progress["seconds"], 1),
               "train_ex_per_s": round(progress["examples"] / max(progress["seconds"], 1e-9), 1),
               "history": progress["history"]}
    if len(val):
        # the kept weights' validation outputs, unless they were evaluated before a resume
        o = outputs.get("best")
        oof = outputs_frame(cfg.head, val.example_id.to_numpy(),
                            o if o is not None else predict(model, feats["val"], cfg, accelerator, "oof"))
        oof.insert(1, "fold", fold)
        metrics.update(fold_metrics(cfg.head, val, oof))
        if selects in metrics:
            metrics[METRIC_NAME[cfg.task]] = metrics[selects]
    if torch.cuda.is_available():
        metrics["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    if accelerator.is_main_process:
        if len(val):
            write_parquet(oof, out / "oof.parquet")
        write_parquet(test_out, out / "test.parquet")
        write_json(metrics, out / "metrics.json")
        log.info("%s fold %d done: %s", cfg.name, fold, {k: v for k, v in metrics.items() if k != "history"})
    loop.finish()
    accelerator.wait_for_everyone()
    return metrics


def _fgm_step(cfg, model, raw, batch, accelerator):
    """Fast Gradient Method: loss again with word embeddings moved by eps * g / ||g||, gradients added."""
    emb = raw.word_embeddings().weight
    norm = emb.grad.norm() if emb.grad is not None else None
    if norm is None or not torch.isfinite(norm) or norm == 0:
        if "fgm" not in _WARNED:
            _WARNED.add("fgm")
            log.warning("FGM skipped a step: the word embeddings have no finite, non-zero gradient (norm %s); "
                        "later skips are not reported", None if norm is None else float(norm))
        return
    rows = emb.grad.abs().sum(1).nonzero().squeeze(1)  # the batch's tokens; the others have no gradient
    backup = emb.data[rows].clone()  # restored exactly (adding and subtracting delta would leave float residue)
    emb.data[rows] += cfg.fgm_eps * emb.grad[rows] / norm
    adversarial = compute_loss(cfg, model, batch)
    accelerator.backward(adversarial / cfg.grad_accum)
    emb.data[rows] = backup
    return {"fgm": adversarial.detach()}


_WARNED: set = set()
