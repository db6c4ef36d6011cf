"""Atomic file and directory writes, so a crash never leaves a half-written artifact that a later stage reads.

In: a target path and the data (DataFrame, dict, text). Out: the file appears under its final name only when
complete: written to a temporary sibling named after the writing process, flushed to disk (fsync), then
`os.replace`d, and the folder entry synced too. Temporaries that a killed process left beside the same target are
removed the next time it is written.

A write that finds the disk full (or the file-size limit reached) is one line naming the path and the fix, with its
temporary removed. A folder made once (`made_once`) records each file's size and a digest of its first and last MiB;
a folder whose files no longer match (truncated by a copy, overwritten) is made again before anything reads it. A
damaged JSON or Parquet file is refused in one line (`read_json`, `read_parquet`), never read as data.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from . import EsciError

log = logging.getLogger("esci")
# how Python, pyarrow, numpy's short writes, torch's stream writer and safetensors report a write the disk refused
FULL = re.compile(r"No space left|File too large|FileTooLarge|StorageFull|Disk quota|\[Errno (27|28|122)\]|"
                  r"file write failed|unexpected pos|requested and \d+ written")
SAMPLED = 1 << 20  # bytes read from each end of a made-once file for its digest


def disk_full(e: BaseException) -> bool:
    """Whether `e` is a write that found the disk (or the file-size limit) full, as Python, pyarrow, torch and
    safetensors report it."""
    return (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)) or \
        (isinstance(e, Exception) and bool(FULL.search(str(e))))  # safetensors' errors are plain Exceptions


def first_line(e: BaseException, width: int = 200) -> str:
    """An exception's first line of message (its class name where it has none), at most `width` characters."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:width]


def full_disk_error(path, e: BaseException) -> EsciError:
    return EsciError(f"{path}: no room to write it ({first_line(e, 120)}); fix: free space on that disk, or set "
                     f"OUTPUT_DIR to a disk with room, and rerun (finished work is kept)")


MARKERS = ("metrics.json", "fingerprint.json", "summary.json", "meta.json")  # what makes a folder one result


def damaged(path, e: BaseException | str) -> EsciError:
    """One line for a file that cannot be read: the fix deletes the result it belongs to (the nearest folder with a
    result's marker: a fold, a pre-training run, the prepared data), or the file itself where it stands alone."""
    path = Path(path)
    first = e if isinstance(e, str) else first_line(e, 120)
    owner = next((d for d in [path.parent, *path.parent.parents][:3] if any((d / m).exists() for m in MARKERS)),
                 None)
    what = f"delete {owner}" if owner else "delete it"
    return EsciError(f"{path}: damaged ({first[:120]}); fix: {what} and rerun, the stage that made it makes it again")


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
    except BaseException as e:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        if disk_full(e):
            raise full_disk_error(path, e) from e
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


def _digest(path: Path) -> list:
    """[size, blake2b of the first and last MiB]: a truncated or overwritten end shows, at the cost of 2 MiB read."""
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        h.update(f.read(SAMPLED))
        if size > SAMPLED:
            f.seek(max(SAMPLED, size - SAMPLED))
            h.update(f.read())
    return [size, h.hexdigest()]


def file_digests(folder: Path, pattern: str = "*") -> dict:
    """{relative name: _digest} of the files under `folder` matching `pattern` (meta.json aside)."""
    return {str(f.relative_to(folder)): _digest(f) for f in sorted(folder.rglob(pattern))
            if f.is_file() and f.name != "meta.json"}


def changed(folder: Path, written: dict | None) -> str | None:
    """None when each file of `written` ({name: [size, digest]}, from file_digests) still matches; else what
    differs. None for written=None (made before digests were recorded)."""
    for name, (size, digest) in (written or {}).items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        now = _digest(path)
        if now[0] != size:
            return f"{name} is {now[0]} bytes, {size} were written"
        if now[1] != digest:
            return f"{name} was overwritten"
    return None


def intact(folder: Path) -> str | None:
    """None when every file of a made-once folder matches what was written; else what differs."""
    try:
        meta = read_json(folder / "meta.json")
    except EsciError as e:
        return str(e)
    return changed(folder, meta.get("_files") if isinstance(meta, dict) else None)


def made_once(folder: Path, build) -> bool:
    """Make `folder` once: build(tmp) fills a temporary sibling and returns a summary, written last as meta.json
    with each file's digest; then the folder appears whole. One process builds at a time; others wait for it and
    find it made. A made folder whose files no longer match their digests is made again. Returns whether this
    call built it."""
    folder = Path(folder)
    with exclusive(folder.parent / f".{folder.name}.lock"):
        if (folder / "meta.json").exists():
            problem = intact(folder)
            if problem is None:
                return False
            log.warning("%s: damaged (%s); making it again", folder, problem)
        with atomic_path(folder, is_dir=True) as tmp:
            meta = build(tmp)
            write_json({**meta, "_files": file_digests(tmp)} if isinstance(meta, dict) else meta, tmp / "meta.json")
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
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise damaged(path, e) from e


def load_torch(path: str | Path):
    """torch.load (weights only, to the CPU); a truncated or overwritten file is one line (EsciError)."""
    import pickle

    import torch
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:  # not OSError: a read that failed
        raise damaged(path, e) from e


@contextlib.contextmanager
def reading(path: str | Path):
    """A block that reads the Parquet file `path` with pyarrow: its errors for a truncated or overwritten file are
    one line (EsciError); a missing file stays FileNotFoundError."""
    try:
        yield
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        if isinstance(e, (FileNotFoundError, EsciError)):
            raise
        raise damaged(path, e) from e


def read_parquet(path: str | Path, **kwargs) -> pd.DataFrame:
    """pd.read_parquet; a truncated or overwritten file is one line (EsciError), not pyarrow's traceback."""
    with reading(path):
        return pd.read_parquet(path, **kwargs)


def hold_driver_lock(fd: int, folder: str, driver: str) -> None:
    """Take the exclusive lock on `fd` (the driver's open OUTPUT_DIR/.driver.lock, inherited; the lock stays with
    the driver's shell and its stages after this process exits) or say in one line who holds it, exit 2."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = Path(folder, ".driver.lock").read_text().strip() or "another driver"
        raise SystemExit(f"{driver}: error: {holder} is running on OUTPUT_DIR={folder}; fix: wait for it to end, "
                         f"or set OUTPUT_DIR to another folder") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{driver} (pid {os.getppid()}, started {pd.Timestamp.now():%Y-%m-%d %H:%M:%S})\n".encode())


if __name__ == "__main__":  # python -m esci.io lock FD FOLDER DRIVER (src/stages.sh)
    import sys
    if sys.argv[1:2] == ["lock"] and len(sys.argv) == 5:
        hold_driver_lock(int(sys.argv[2]), sys.argv[3], sys.argv[4])
