"""The one optimisation loop shared by fine-tuning (esci.train) and multi-task pre-training (esci.pretrain).

In: a prepared model/optimizer/scheduler (through Accelerate), an optional EMA, and three callables from the
caller: the batches of an epoch, the loss of one batch, and an evaluation returning a score (higher is better).
Out: `Loop.run()` steps every `grad_accum` micro-batches (and at the epoch's end), clips, updates the EMA,
evaluates `evals_per_epoch` times an epoch, calls `on_best` when the score improves, and keeps a resumable
`state.pt` (model, optimizer, scheduler, EMA, progress through the epoch's batch order, every process's RNG),
written atomically every `save_every` steps and at each epoch's end. One tqdm bar per batch tag (examples/s).
The training curve goes to `train_log.jsonl` beside it: every `log_every` optimizer steps the mean loss and each
of its terms (task, R-Drop, FGM; pre-training's tasks), the learning rates and examples/s; every evaluation's
figures. A resumed run drops the lines after its checkpoint and goes on. With `tracker` set (an Accelerate
tracker: tensorboard, wandb, mlflow, ...) the same numbers also go to it, under `<out>/tracker`.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs, gather_object
from tqdm.auto import tqdm

from . import EsciError
from .io import atomic_path, load_torch

log = logging.getLogger("esci")


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_has_bf16() -> bool:
    """Native bf16 matrix instructions (AVX512-BF16 or AMX); elsewhere bf16 on a CPU is emulated and slow."""
    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(p() for p in probes if p is not None)


def precision(cfg) -> str:
    """Accelerate's mixed_precision: bf16 where the GPU or CPU has it natively, else fp16 on GPUs, fp32 on CPUs."""
    if cfg.precision != "auto":
        return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[cfg.precision]
    if not torch.cuda.is_available():
        return "bf16" if cpu_has_bf16() else "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet_ml",
                    "aim": "aim", "clearml": "clearml", "dvclive": "dvclive"}


def _scalars(entry: dict, prefix: str = "") -> dict:
    """A train_log entry as flat scalars for a tracker: {"eval": {"f1": x}} -> eval/f1, lr [a, b] -> lr/0, lr/1."""
    out = {}
    for k, v in entry.items():
        if isinstance(v, dict):
            out.update(_scalars(v, f"{prefix}{k}/"))
        elif isinstance(v, list):
            out.update(_scalars(dict(enumerate(v)), f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch"):
            out[f"{prefix}{k}"] = v
    return out


def make_accelerator(cfg, find_unused: bool = False, out: Path | None = None) -> Accelerator:
    """find_unused: DDP tolerates parameters a step leaves unused (pre-training's per-task heads); out: the run's
    folder, where a tracker (cfg.tracker) writes."""
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if find_unused else []
    if cfg.tracker:
        package = TRACKER_PACKAGES.get(cfg.tracker)
        if package is None:
            raise EsciError(f"tracker={cfg.tracker!r} is not one of {sorted(TRACKER_PACKAGES)}; fix: pick one, or "
                            "tracker= (train_log.jsonl only)")
        if importlib.util.find_spec(package) is None:
            raise EsciError(f"tracker={cfg.tracker} needs the package {package}, which is not installed; fix: "
                            f"pip install {package}, or tracker= (train_log.jsonl only)")
    # one process may train twice at different precisions (notebooks, tests): the state of the last run is dropped
    AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=precision(cfg), cpu=not torch.cuda.is_available(),
                              kwargs_handlers=handlers, log_with=cfg.tracker or None,
                              project_dir=str(out) if out is not None else None)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return accelerator


def adamw(param_groups: list[dict]) -> torch.optim.AdamW:
    # the fused kernel on CPU too: 0.16 -> 0.035 s per MiniLM step on 2 cores (a sixth of a step at max_len 64)
    return torch.optim.AdamW(param_groups, fused=True)


class EMA:
    """Shadow copy of the weights; decay warms up as min(decay, (1+n)/(10+n))."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.n = decay, 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model):
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach(), 1 - d)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self):
        return {"n": self.n, "shadow": self.shadow}

    def load_state_dict(self, sd):
        self.n = sd["n"]
        for k, v in sd["shadow"].items():
            self.shadow[k].copy_(v)


@contextlib.contextmanager
def swapped(model, weights):
    """Temporarily load `weights` (e.g. the EMA shadow) into `model`."""
    backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(weights)
    try:
        yield
    finally:
        model.load_state_dict(backup)


def _rng_state() -> dict:
    """Every RNG's state as tensors and numbers, so state.pt loads with weights_only=True (no pickle)."""
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": torch.tensor(mt, dtype=torch.int64), "python_meta": [version, gauss],
            "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_meta": [int(pos), int(has_gauss), float(cached)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(s: dict) -> None:
    random.setstate((s["python_meta"][0], tuple(s["python"].tolist()), s["python_meta"][1]))
    pos, has_gauss, cached = s["numpy_meta"]
    np.random.set_state(("MT19937", s["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(s["torch"])
    if s["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def _fail_point(step: int) -> None:
    """Fault injection for the resume tests: ESCI_FAIL_AT_STEP=N exits abruptly after optimizer step N."""
    if os.environ.get("ESCI_FAIL_AT_STEP") == str(step):
        os._exit(3)


def batch_order(lengths: np.ndarray, batch_size: int, seed: int, bucket: bool) -> list[np.ndarray]:
    """Shuffled batches; with bucketing, rows are length-sorted inside random windows of 50 batches first."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(lengths))
    if bucket:
        win = batch_size * 50
        windows = np.split(idx, range(win, len(idx), win))
        idx = np.concatenate([w[np.argsort(lengths[w], kind="stable")] for w in windows])
    batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def shard(batches: list, accelerator) -> list:
    """This process's share of an epoch's batches; every process gets the same count."""
    per_proc = len(batches) // accelerator.num_processes
    return batches[accelerator.process_index::accelerator.num_processes][:per_proc]


class Loop:
    def __init__(self, accelerator, model, optimizer, scheduler, ema: EMA | None, out: Path, *, grad_accum: int = 1,
                 max_grad_norm: float = 0.0, save_every: int = 0, evals_per_epoch: int = 1, name: str = "train",
                 checkpoint: bool = True, log_every: int = 50, max_steps: int = 0):
        """checkpoint=False: no state.pt and no training log at all (timing runs); max_steps: stop after that many
        optimizer steps (0 = the epochs' batches), evaluating where the last epoch ends."""
        self.acc, self.model, self.opt, self.sched, self.ema = accelerator, model, optimizer, scheduler, ema
        self.raw = accelerator.unwrap_model(model)
        self.state_path = Path(out) / "state.pt"
        self.grad_accum, self.max_grad_norm = grad_accum, max_grad_norm
        self.save_every, self.evals_per_epoch, self.name = save_every, evals_per_epoch, name
        self.checkpoint, self.log_every, self.max_steps = checkpoint, log_every, max_steps
        self.log_path = Path(out) / "train_log.jsonl"
        if checkpoint and accelerator.log_with:
            accelerator.init_trackers("tracker")
        self.window: dict = {}
        self.progress = {"epoch": 0, "micro": 0, "step": 0, "best": -math.inf, "history": [], "seconds": 0.0,
                         "examples": 0}

    def resume(self) -> bool:
        """Continue from state.pt where there is one; else start over, without the log of a run killed before its
        first checkpoint. A damaged state.pt is a resume point lost, not an error: the run starts over."""
        st = None
        if self.state_path.exists():
            try:
                st = load_torch(self.state_path)
            except EsciError as e:
                log.warning("%s; starting over", e)
        if st is None:
            if self.acc.is_main_process:
                self.log_path.unlink(missing_ok=True)
            return False
        self.raw.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        if self.ema:
            self.ema.load_state_dict(st["ema"])
        self.progress = st["progress"]
        _set_rng_state(st["rng"][self.acc.process_index])
        if self.acc.is_main_process and self.log_path.exists():  # lines written after the checkpoint are redone
            keep = [line for line in self.log_path.read_text().splitlines()
                    if json.loads(line)["step"] <= self.progress["step"]]
            with atomic_path(self.log_path) as tmp:
                tmp.write_text("".join(f"{line}\n" for line in keep))
        log.info("%s: resumed at epoch %d, step %d (best %.4f)", self.name, self.progress["epoch"],
                 self.progress["step"], self.progress["best"])
        return True

    def save_state(self) -> None:
        if not self.checkpoint:
            return
        rngs = gather_object([_rng_state()]) if self.acc.num_processes > 1 else [_rng_state()]
        if self.acc.is_main_process:
            with atomic_path(self.state_path) as tmp:
                torch.save({"model": self.raw.state_dict(), "optimizer": self.opt.state_dict(),
                            "scheduler": self.sched.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
                            "progress": self.progress, "rng": rngs}, tmp)
        self.acc.wait_for_everyone()

    def log(self, entry: dict) -> None:
        if not self.checkpoint:
            return
        if self.acc.is_main_process:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
        if self.acc.trackers:
            self.acc.log(_scalars(entry), step=entry["step"])

    def _add(self, loss: torch.Tensor, terms: dict, examples: int) -> None:
        w = self.window
        if not w:
            w.update(n=0, examples=0, t=time.perf_counter(), sums={})
        w["n"] += 1
        w["examples"] += examples
        for k, v in {"loss": loss.detach(), **terms}.items():
            w["sums"][k] = w["sums"].get(k, 0.0) + v.float()

    def _flush(self, epoch: int) -> None:
        w, self.window = self.window, {}
        if not w:
            return
        entry = {"step": self.progress["step"], "epoch": epoch, "lr": [g["lr"] for g in self.opt.param_groups],
                 "ex_per_s": w["examples"] / (time.perf_counter() - w["t"])}
        entry.update({k: float(v) / w["n"] for k, v in w["sums"].items()})
        self.log(entry)

    def eval_weights(self):
        """Context in which the model holds the weights to evaluate and save (the EMA shadow when EMA is on)."""
        return contextlib.nullcontext() if self.ema is None else swapped(self.raw, self.ema.shadow)

    def best_weights(self) -> dict:
        return self.ema.shadow if self.ema else self.raw.state_dict()

    def record(self, epoch: int, evaluate: Callable[[], tuple[float, dict]], on_best: Callable[[], None]) -> None:
        started = time.perf_counter()
        with self.eval_weights():
            score, info = evaluate()
            entry = {"epoch": epoch, "step": self.progress["step"], **info}
            self.progress["history"].append(entry)
            self.log({"step": entry["step"], "epoch": epoch, "eval": info})
            log.info("%s: %s", self.name, entry)
            if not score <= self.progress["best"]:  # nan (nothing to validate on) keeps the latest weights
                self.progress["best"], self.progress["best_at"] = score, len(self.progress["history"]) - 1
                on_best()
        if self.window:  # the log's examples/s counts training time only
            self.window["t"] += time.perf_counter() - started

    def run(self, epochs: int, batches_for: Callable[[int], list], loss_of: Callable, evaluate: Callable,
            on_best: Callable[[], None], after_backward: Callable | None = None,
            tag_of: Callable = lambda item: "train") -> dict:
        """batches_for(epoch) -> this process's batches; loss_of(item) -> (loss tensor, its batch, {term: detached
        tensor}); evaluate() -> (score, info) under the evaluation weights; on_best() saves them;
        after_backward(batch) adds gradients on the same batch (FGM) and may return more terms."""
        acc, p = self.acc, self.progress
        clock = time.perf_counter()
        # dropout on from the first step: from_pretrained leaves an encoder in eval mode, and the first evaluation
        # (which ends in train()) used to switch it on mid-run, so a run resumed after it trained otherwise
        self.model.train()
        for epoch in range(p["epoch"], epochs):
            batches = batches_for(epoch)
            if self.max_steps:  # the epoch's batches cut to the steps left when it began (the same on resume)
                if p["micro"] == 0:
                    p["epoch_step0"] = p["step"]
                left = self.max_steps - p["epoch_step0"]
                if left <= 0:
                    break
                batches = batches[:left * self.grad_accum]
            n_micro = len(batches)
            eval_at = {int(round(n_micro * (i + 1) / self.evals_per_epoch)) for i in range(self.evals_per_epoch)}
            bars = {}
            for item in batches:
                bars.setdefault(tag_of(item), [0, 0])[1] += len(item) * acc.num_processes
            for item in batches[:p["micro"]]:
                bars[tag_of(item)][0] += len(item) * acc.num_processes
            bars = {tag: tqdm(total=tot, initial=done, unit="ex", position=i, disable=not acc.is_main_process,
                              desc=f"{self.name} epoch {epoch}" + ("" if tag == "train" else f" {tag}"))
                    for i, (tag, (done, tot)) in enumerate(sorted(bars.items()))}
            for i in range(p["micro"], n_micro):
                item = batches[i]
                last = (i + 1) % self.grad_accum == 0 or i + 1 == n_micro
                with contextlib.nullcontext() if last else acc.no_sync(self.model):
                    loss, batch, terms = loss_of(item)
                    acc.backward(loss / self.grad_accum)
                    if after_backward is not None:
                        terms.update(after_backward(batch) or {})
                self._add(loss, terms, len(item) * acc.num_processes)
                p["examples"] += len(item) * acc.num_processes
                if last:
                    if self.max_grad_norm:
                        acc.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
                    self.opt.step()
                    self.sched.step()
                    self.opt.zero_grad(set_to_none=True)
                    if self.ema:
                        self.ema.update(self.raw)
                    p["step"] += 1
                    if self.log_every and p["step"] % self.log_every == 0:
                        self._flush(epoch)
                p["micro"] = i + 1
                bar = bars[tag_of(item)]
                bar.update(len(item) * acc.num_processes)
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
                if p["micro"] in eval_at:
                    self.record(epoch, evaluate, on_best)
                if last and (i + 1 == n_micro or (self.save_every and p["step"] % self.save_every == 0)):
                    if i + 1 == n_micro:
                        p["epoch"], p["micro"] = epoch + 1, 0
                    p["seconds"], clock = p["seconds"] + time.perf_counter() - clock, time.perf_counter()
                    self.save_state()
                    _fail_point(p["step"])
            self._flush(epoch)
            for bar in bars.values():
                bar.close()
        return p

    def finish(self) -> None:
        if self.acc.is_main_process:
            self.state_path.unlink(missing_ok=True)
