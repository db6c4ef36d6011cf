"""Atomic file and directory writes, so a crash never leaves a half-written artifact that a later stage reads.

In: a target path and the data (DataFrame, dict, text). Out: the file appears under its final name only when
complete (written to a temporary name in the same directory, then `os.replace`d). `disk_cached` keeps a
computed object (tokenized text) under a key, so later runs read it instead of computing it again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import torch


@contextlib.contextmanager
def atomic_path(path: str | Path, is_dir: bool = False):
    """Yield a temporary sibling path; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) if is_dir else \
        path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        if is_dir:
            tmp.chmod(0o755)  # mkdtemp makes it private
        if is_dir and path.exists():
            old = path.with_name(f".{path.name}.old{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_json(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def disk_cached(cache_dir: Path | None, prefix: str, key_parts: list, build):
    """build(), saved as <cache_dir>/<prefix>_<hash of key_parts>.pt and loaded from there while the key holds;
    computed every time when cache_dir is None."""
    if cache_dir is None:
        return build()
    key = hashlib.sha1(json.dumps(key_parts).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{prefix}_{key}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    out = build()
    with atomic_path(path) as tmp:
        torch.save(out, tmp)
    return out
