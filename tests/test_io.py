"""Atomic writes: a file appears only complete, a failed write leaves nothing, and temporaries left by a killed
process beside the same target are removed the next time it is written."""
import os
import subprocess
import sys

import pytest

from esci.io import atomic_path, read_json, write_json


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    pid = dead_pid()
    stale_file = tmp_path / f".x.json.tmp{pid}"
    stale_dir = tmp_path / f".x.json.{pid}.abc123"
    live = tmp_path / f".x.json.tmp{os.getppid()}"  # a running process's temporary stays
    other = tmp_path / f".y.json.tmp{pid}"  # another target's is left for that target's next write
    for p in (stale_file, live, other):
        p.write_text("half")
    stale_dir.mkdir()
    write_json({"a": 1}, tmp_path / "x.json")
    assert read_json(tmp_path / "x.json") == {"a": 1}
    assert not stale_file.exists() and not stale_dir.exists() and live.exists() and other.exists()
