"""Throughput: the project's training loop and inference against a plain loop, same model, same pair lengths.

Usage: python bench/throughput.py [--model minilm|tiny|xlmr-large|DIR] [--train-rows N] [--infer-rows N]
                                  [--batch 128] [--compile] [--threads N] [--json PATH]
  project  esci.loop.Loop (what fine-tuning runs) with length-bucketed batches of --batch padded to a multiple of
           32, bf16 autocast (fp16 where bf16 is missing), fused AdamW on CUDA, optional torch.compile;
           inference length-sorted at 4x the batch
  plain    batches of 32 in random order padded to 256, fp16 autocast with a grad scaler, AdamW, no bucketing;
           inference the same way
Pair lengths are ESCI-like: lognormal tokens (median 140, sigma 0.6) clipped to [12, 256], about 16% at 256,
the shape of (query, title | brand | color | bullets | description) pairs at max_len 256. xlmr-large is a random
24-layer, hidden-1024 XLM-R (weights do not change the speed). On a CPU the project runs bf16 where the CPU has it
natively (else fp32) and the plain loop fp32; absolute CPU figures mean little, read the ratio.
Prints examples/s for each and the ratios (project / plain); --json PATH also writes them (with the model, device,
rows, batch, compile and precision) as one JSON object.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import XLMRobertaConfig, XLMRobertaModel, get_cosine_schedule_with_warmup

from esci.config import load_config
from esci.loop import EMA, Loop, adamw, batch_order, make_accelerator, precision
from esci.features import Features, TokenStore
from esci.encoder import load_encoder
from esci.model import CrossEncoder
from esci.train import collate

MAX_LEN = 256


def esci_like_lengths(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.lognormal(np.log(140), 0.6, n)), 12, MAX_LEN).astype(int)


def synthetic_features(n: int, vocab: int, cfg, seed: int = 0) -> Features:
    """n pairs of an 8-token query and a product filling an ESCI-like pair length, in a BERT-like template."""
    rng = np.random.default_rng(seed)
    lq = np.full(n, 8)
    lp = esci_like_lengths(n, seed) - 8 - 3

    def flat(lens):
        return rng.integers(5, vocab, int(lens.sum())).astype(np.int32), np.r_[0, np.cumsum(lens)].astype(np.int64)

    tok = TokenStore(None, *flat(lq), *flat(lp), np.array([1, -1, 2, -2, 2]), np.array([0, 0, 0, 1, 1]), False, 0,
                     MAX_LEN)
    return Features(tok, None, np.arange(n), np.arange(n), cfg)


def build_model(name: str, cfg) -> CrossEncoder:
    if name == "xlmr-large":
        enc = XLMRobertaModel(XLMRobertaConfig(vocab_size=250002, hidden_size=1024, num_hidden_layers=24,
                                               num_attention_heads=16, intermediate_size=4096,
                                               max_position_embeddings=514), add_pooling_layer=False)
    else:
        enc = load_encoder("" if name == "minilm" else name)
    return CrossEncoder(enc, cfg, 0, 0, 0)


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_epoch(epoch, feats, warm) -> float:
    """Examples/s of epoch(feats), after an untimed epoch(warm)."""
    epoch(warm)
    sync()
    t = time.perf_counter()
    epoch(feats)
    sync()
    return len(feats) / (time.perf_counter() - t)


def targets(feats) -> tuple[np.ndarray, np.ndarray]:
    return np.random.default_rng(1).integers(0, 4, len(feats)), np.ones(len(feats), np.float32)


def project_train(model, feats, warm, cfg) -> float:
    """One epoch over feats through esci.loop.Loop, after a short warm-up epoch over `warm`."""
    accelerator = make_accelerator(cfg)
    optimizer = adamw(model.param_groups(cfg))
    scheduler = get_cosine_schedule_with_warmup(optimizer, 0, 10 ** 6)
    model, optimizer = accelerator.prepare(model, optimizer)

    def epoch(f):
        y, w = targets(f)

        def loss_of(rows):
            batch = {k: v.to(accelerator.device) for k, v in collate(f, rows, 32, y, w).items()}
            with accelerator.autocast():
                return F.cross_entropy(model(batch).float(), batch["y"]), batch, {}

        loop = Loop(accelerator, model, optimizer, scheduler, EMA(accelerator.unwrap_model(model), 0.999),
                    cfg.run_dir, name="project train", checkpoint=False)
        loop.run(1, lambda e: batch_order(f.lengths, cfg.batch_size, 0, True), loss_of, lambda: (0.0, {}),
                 lambda: None)

    return timed_epoch(epoch, feats, warm)


def plain_train(model, feats, warm, device) -> float:
    """One epoch over feats in random batches of 32 padded to 256, fp16 autocast, after a warm-up over `warm`."""
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    cuda = device.type == "cuda"
    scaler = torch.amp.GradScaler(enabled=cuda)

    def epoch(f):
        y, w = targets(f)
        order = np.random.default_rng(0).permutation(len(f))
        for b in (order[i:i + 32] for i in range(0, len(order), 32)):
            batch = {k: v.to(device) for k, v in collate(f, b, MAX_LEN, y, w).items()}
            with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
                loss = F.cross_entropy(model(batch).float(), batch["y"])
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

    return timed_epoch(epoch, feats, warm)


@torch.no_grad()
def infer(model, feats, device, batch_size: int, pad: int, sort: bool, dtype) -> float:
    rows = len(feats)
    model.to(device).eval()
    order = np.argsort(feats.lengths, kind="stable") if sort else np.arange(rows)
    batches = [order[i:i + batch_size] for i in range(0, rows, batch_size)]
    with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        model({k: v.to(device) for k, v in feats.batch(batches[0], pad).items()})
        sync()
        t = time.perf_counter()
        for b in batches:
            model({k: v.to(device) for k, v in feats.batch(b, pad).items()})
    sync()
    return rows / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--train-rows", type=int, default=0,
                    help="timed training pairs, one epoch per loop (default: 8192 GPU, 512 CPU)")
    ap.add_argument("--infer-rows", type=int, default=0, help="timed inference pairs (default: 32768 GPU, 1024 CPU)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default="", metavar="PATH", help="also write the figures to this JSON file")
    a = ap.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    train_rows = a.train_rows or (8192 if cuda else 512)
    infer_rows = a.infer_rows or (32768 if cuda else 1024)
    cfg = load_config(overrides=["use_units=False", "use_ids=False", f"batch_size={a.batch}", "name=bench",
                                 f"compile={a.compile}", f"threads={a.threads}", "output_dir=/tmp/esci_bench"])
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build_model(a.model, cfg)
    vocab = model.word_embeddings().weight.shape[0]
    feats, warm = synthetic_features(train_rows, vocab, cfg, 0), synthetic_features(2 * a.batch, vocab, cfg, 1)
    infer_feats = synthetic_features(infer_rows, vocab, cfg, 2)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    low = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": None}[precision(cfg)]

    if a.compile:
        model.encoder = torch.compile(model.encoder, dynamic=True)
    res = {"project train": project_train(model, feats, warm, cfg)}
    model = build_model(a.model, cfg)
    model.load_state_dict(init)
    res["plain train"] = plain_train(model, feats, warm, device)
    res["plain infer"] = infer(model, infer_feats, device, 32, MAX_LEN, False, torch.float16 if cuda else None)
    if a.compile:
        model.encoder = torch.compile(model.encoder, dynamic=True)
    res["project infer"] = infer(model, infer_feats, device, 4 * a.batch, 32, True, low)
    where = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"model {a.model}, {where}, {train_rows} training / {infer_rows} inference pairs, mean length "
          f"{feats.lengths.mean():.0f} tokens")
    for k in ("project train", "plain train", "project infer", "plain infer"):
        print(f"{k:14s} {res[k]:10.1f} ex/s" if cuda else f"{k:14s} (CPU, relative only) {res[k]:8.1f} ex/s")
    ratio_train, ratio_infer = res["project train"] / res["plain train"], res["project infer"] / res["plain infer"]
    print(f"ratio train {ratio_train:.2f}x, infer {ratio_infer:.2f}x (project / plain)")
    if a.json:
        figures = {"model": a.model, "device": where, "rows": {"train": train_rows, "infer": infer_rows},
                   "mean_length": float(feats.lengths.mean()), "batch": a.batch, "compile": a.compile,
                   "precision": precision(cfg), "ex_per_s": {k.replace(" ", "_"): v for k, v in res.items()},
                   "ratio_train": ratio_train, "ratio_infer": ratio_infer,
                   "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
