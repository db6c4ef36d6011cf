"""Atomic file and directory writes, so a crash never leaves a half-written artifact that a later stage reads.

In: a target path and the data (DataFrame, dict, text). Out: the file appears under its final name only when
complete: written to a temporary sibling named after the writing process, flushed to disk (fsync), then
`os.replace`d, and the folder entry synced too. Temporaries that a killed process left beside the same target are
removed the next time it is written.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path: Path) -> None:
    """Temporaries of `path` (.<name>.tmp<pid>, .<name>.old<pid>, .<name>.<pid>.<random>) whose process is gone."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:tmp|old)?(\d+)(?:\.[^.]+)?$")
    for entry in path.parent.glob(f".{path.name}.*"):
        m = pattern.match(entry.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, is_dir: bool = False):
    """Yield a temporary sibling path; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", dir=path.parent)) if is_dir else \
        path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        if is_dir:
            tmp.chmod(0o755)  # mkdtemp makes it private
            for f in tmp.rglob("*"):
                if f.is_file():
                    _fsync(f)
        _fsync(tmp)
        if is_dir and path.exists():
            old = path.with_name(f".{path.name}.old{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


@contextlib.contextmanager
def exclusive(path: str | Path):
    """Hold an exclusive lock on the file `path` (made if missing): one process at a time in the block, e.g. the
    ranks of a distributed launch that all prepare the same tables."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def made_once(folder: Path, build) -> bool:
    """Make `folder` once: build(tmp) fills a temporary sibling and returns a summary, written last as meta.json;
    then the folder appears whole. One process builds at a time; others wait for it and find it made. Returns
    whether this call built it."""
    folder = Path(folder)
    with exclusive(folder.parent / f".{folder.name}.lock"):
        if (folder / "meta.json").exists():
            return False
        with atomic_path(folder, is_dir=True) as tmp:
            write_json(build(tmp), tmp / "meta.json")
    return True


def write_parquet(df: pd.DataFrame, path: str | Path, row_group_size: int | None = None) -> None:
    """row_group_size: rows per row group (smaller groups let a reader stream the file in bounded memory)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, row_group_size=row_group_size)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_json(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())
