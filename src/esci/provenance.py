"""What a result was made from, so that a rerun reuses it only when that still holds.

Each stage that skips finished work writes `fingerprint.json` beside its outputs when it starts: the resolved
config keys that can change the result, the identity of its inputs (the prepared data's content hashes, the
fingerprint of a pre-training run it starts from, the label issues it drops) and CODE_VERSION. On a rerun
`begin()` compares: the same -> the result is reused (or a killed run resumes); different -> one line naming what
changed and the fix (another run name, or force=True / --force to redo it), never a silent reuse.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from . import EsciError
from .io import read_json, write_json

CODE_VERSION = 2  # bump when a change alters what a stage makes from the same inputs
# keys that change where or how fast a result is made, not what it is
RUN_ONLY = {"profile", "name", "fold", "force", "data_dir", "output_dir", "threads", "save_every", "log_every",
            "tracker", "eval_batch_size", "compile", "members", "blend_steps", "stack", "stack_params", "clean_frac",
            "sample_queries", "sample_noise", "sample_if_missing", "unk_warn", "bi_encoders", "bi_fields", "bi_max_len",
            "bi_batch"}
# keys added after CODE_VERSION 2, with their defaults: a fingerprint holds them only when set, so that results made
# before them stay valid
LATER_KEYS = {"train_seed": 0, "max_train_examples": 0, "max_steps": 0, "pt_max_steps": 0, "encoder_dropout": -1.0}
# what fine-tuning's loop makes from the same inputs: 2 = dropout on from the first step (before, an encoder read with
# from_pretrained trained without it until its first evaluation); folds made before it are made from other code.
# Pre-training evaluates before its first step, which switched dropout on: its runs are unchanged
LOOP_VERSION = 2
FIX = "fix: give this run another name=..., or add --force (drivers: OVERRIDES=\"force=True\") to redo it"


def digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()[:16]


def fingerprint(cfg, keys=None, **inputs) -> dict:
    """keys: the config keys that matter (default: all but RUN_ONLY); inputs: identities of upstream results."""
    keys = sorted(k for k in cfg if k not in RUN_ONLY) if keys is None else sorted(keys)
    keys = [k for k in keys if k not in LATER_KEYS or cfg[k] != LATER_KEYS[k]]
    return {"code": CODE_VERSION, "config": {k: cfg[k] for k in keys}, "inputs": inputs}


def describe(old: dict, new: dict) -> str:
    """The first few differences, e.g. "lr 2e-05 -> 3e-05, data changed"."""
    out = []
    for part in ("config", "inputs"):
        a, b = old.get(part, {}), new.get(part, {})
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                out.append(f"{k} {a.get(k)!r} -> {b.get(k)!r}" if part == "config" else f"{k} changed")
    if old.get("code") != new.get("code"):
        out.append(f"code version {old.get('code')} -> {new.get('code')}")
    return ", ".join(out[:4]) + (f" and {len(out) - 4} more" if len(out) > 4 else "")


def stale(folder: Path, fp: dict) -> str | None:
    """None when the folder is missing or empty, or was made from fp; else what differs."""
    if not folder.exists() or not any(folder.iterdir()):
        return None
    path = folder / "fingerprint.json"
    old = read_json(path) if path.exists() else {}
    if old == fp:
        return None
    return describe(old, fp) if old else "made by a version of this project that kept no fingerprint"


def begin(folder: Path, fp: dict, force: bool, complete: bool) -> bool:
    """True: the folder holds a finished result made from fp (skip the stage). False: start or resume here; a
    result made from other inputs is removed first with force, and refused (EsciError) without."""
    what = stale(folder, fp)
    if what is None:
        return complete
    if not force:
        raise EsciError(f"{folder}: made from other inputs ({what}); {FIX}")
    if os.environ.get("RANK", "0") == "0":  # one process removes it
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{folder}: made from other inputs ({what}); force=True: redoing it", flush=True)
    return False


def record(folder: Path, fp: dict) -> None:
    write_json(fp, folder / "fingerprint.json")


def data_identity(cfg) -> str:
    """The prepared tables' identity (their content hashes and fold settings)."""
    path = cfg.data_root / "summary.json"
    if not path.exists():
        raise EsciError(f"{path}: prepared tables missing; fix: run src/01_prepare.py first")
    summary = read_json(path)
    return digest({k: summary[k] for k in ("hashes", "n_folds", "seed", "examples", "fingerprint")})


def pretrained_dir(cfg) -> Path | None:
    """The completed pre-training run a fine-tuning config starts from, or None."""
    if not cfg.init_from:
        return None
    run = cfg.run_root / cfg.init_from
    if not (run / "metrics.json").exists():
        raise EsciError(f"{run}/metrics.json: pre-training run '{cfg.init_from}' is not complete; fix: run "
                        f"src/02_pretrain.py with name={cfg.init_from} first, or set init_from=\"\"")
    return run


def fold_fingerprint(cfg) -> dict:
    """What a fine-tuned fold of cfg is made from: its config, the data, the pre-training run, the label issues."""
    inputs = {"data": data_identity(cfg), "loop": LOOP_VERSION}
    if cfg.init_from:
        inputs["init_from"] = digest(read_json(pretrained_dir(cfg) / "fingerprint.json"))
    if cfg.exclude_from:
        issues = cfg.run_root / cfg.exclude_from / "label_issues.parquet"
        if not issues.exists():
            raise EsciError(f"{issues}: missing (exclude_from={cfg.exclude_from}); fix: run src/04_clean_labels.py "
                            f"with configs/{cfg.exclude_from}.py first")
        inputs["exclude_from"] = file_digest(issues)
    keys = [k for k in cfg if k not in RUN_ONLY and not k.startswith("pt_")]
    return fingerprint(cfg, keys, **inputs)


def pending_folds(cfg) -> list[int]:
    """The folds of cfg's experiment a driver still has to run: no metrics.json yet, or made from other inputs
    (their stage then says what changed). Reports the others as skipped, in one light process for the lot."""
    fp = fold_fingerprint(cfg)
    pending = []
    for k in range(cfg.n_folds):
        folder = cfg.fold_dir(k)
        if cfg.fold_complete(k) and stale(folder, fp) is None:
            print(f"{folder} is complete; skipping", file=sys.stderr)
        else:
            pending.append(k)
    return pending


def check_fold(cfg, fold_dir: Path) -> None:
    """A finished fold read by a later stage (blend, cleaning) must have been made from cfg's inputs."""
    path = fold_dir / "fingerprint.json"
    old = read_json(path) if path.exists() else {}
    new = fold_fingerprint(cfg)
    if old != new:
        what = describe(old, new) if old else "made by a version of this project that kept no fingerprint"
        raise EsciError(f"{fold_dir}: made from other inputs than {cfg.name} asks for now ({what}); fix: rerun "
                        f"src/03_train.py for it (with --force), or restore the config it was made with")
