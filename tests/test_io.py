"""Atomic writes: a file appears only complete, a failed write leaves nothing, and temporaries left by a killed
process beside the same target are removed the next time it is written. A full disk is one line; a damaged store is
made again, a damaged file refused in one line; one driver at a time per output folder."""
import os
import subprocess
import sys

import pytest

from esci.io import atomic_path, intact, made_once, read_json, read_parquet, write_json, write_parquet


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


def limited(limit: int, code: str) -> subprocess.CompletedProcess:
    """`code` run in a fresh interpreter under a file-size limit of `limit` bytes (what a full disk does to writes)."""
    import resource
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))


@pytest.mark.parametrize("writer", ["parquet", "torch", "numpy", "safetensors"])
def test_a_full_disk_is_one_line_naming_the_path_and_nothing_is_left(tmp_path, writer):
    write = {"parquet": "write_parquet(pd.DataFrame({'a': np.arange(100000)}), out)",
             "torch": "import torch\nwith atomic_path(out) as t: torch.save(torch.zeros(100000), t)",
             "numpy": "with atomic_path(out) as t, open(t, 'wb') as f: np.save(f, np.zeros(100000))",
             "safetensors": "from safetensors.numpy import save_file\nwith atomic_path(out) as t: "
                            "save_file({'a': np.zeros(100000)}, str(t))"}[writer]
    code = (f"import numpy as np, pandas as pd\nfrom esci.cli import run_stage\nfrom esci.io import atomic_path, "
            f"write_parquet\nout = {str(tmp_path / 'x.bin')!r}\ndef fn(cfg):\n    " + write.replace("\n", "\n    ") +
            "\nrun_stage('stage', 'doc', fn, [])")
    res = limited(20_000, code)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr and "x.bin: no room to write it" in lines[-1] and "OUTPUT_DIR" in lines[-1]
    assert list(tmp_path.iterdir()) == []


def test_a_made_once_folder_whose_files_changed_is_made_again(tmp_path):
    import numpy as np
    builds = []

    def build(tmp):
        builds.append(1)
        np.save(tmp / "a.npy", np.arange(300_000))
        return {"rows": 300_000}

    folder = tmp_path / "store"
    assert made_once(folder, build) and not made_once(folder, build) and len(builds) == 1
    arr = folder / "a.npy"
    for damage in (lambda b: b[: len(b) // 2], lambda b: b[:10] + b"\0" * 6 + b[16:],
                   lambda b: b[:-8] + b"\1" * 8):
        arr.write_bytes(damage(arr.read_bytes()))
        assert intact(folder) is not None
        assert made_once(folder, build)
        assert intact(folder) is None and np.load(arr).sum() == np.arange(300_000).sum()
    assert len(builds) == 4 and read_json(folder / "meta.json")["rows"] == 300_000


def test_damaged_files_are_refused_in_one_line(tmp_path):
    import pandas as pd
    from esci import EsciError
    write_json({"a": 1}, tmp_path / "f.json")
    write_parquet(pd.DataFrame({"a": range(1000)}), tmp_path / "t.parquet")
    for name in ("f.json", "t.parquet"):
        p = tmp_path / name
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(EsciError, match=r"f\.json: damaged .*fix: delete it"):
        read_json(tmp_path / "f.json")
    with pytest.raises(EsciError, match=r"t\.parquet: damaged .*fix: delete it"):
        read_parquet(tmp_path / "t.parquet")
    with pytest.raises(FileNotFoundError):
        read_parquet(tmp_path / "missing.parquet")


def test_a_second_driver_on_the_same_output_folder_is_refused_in_one_line(tmp_path):
    """The lock is taken by a short-lived child on the shell's descriptor and stays held by the shell."""
    lock = (f"exec 9>>{tmp_path}/.driver.lock; {sys.executable} -m esci.io lock 9 {tmp_path} run_task1.sh || exit 2")
    first = subprocess.Popen(["bash", "-c", f"{lock}; echo held; exec sleep 30"], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": "src"})
    try:
        assert first.stdout.readline().strip() == "held"
        second = subprocess.run(["bash", "-c", lock.replace("run_task1", "run_task2")], capture_output=True,
                                text=True, env={**os.environ, "PYTHONPATH": "src"})
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"run_task2.sh: error: run_task1.sh (pid {first.pid}" in second.stderr and "OUTPUT_DIR" in second.stderr
    finally:
        first.kill()
        first.wait()
    third = subprocess.run(["bash", "-c", lock + "; echo ok"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": "src"})
    assert third.returncode == 0 and third.stdout.strip() == "ok"


def test_prepare_on_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path):
    """The embedded sample's writer goes through the same atomic writes (it once named no file)."""
    import resource
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, str(root / "src" / "01_prepare.py"), "configs/cpu.py"], cwd=root,
                         capture_output=True, text=True,
                         env={**os.environ, "OUTPUT_DIR": str(tmp_path), "DATA_DIR": "sample", "PYTHONPATH": "src"},
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000)))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("prepare: error: ") and "sample_data/shopping_queries_dataset_" in last, last
    assert [p for p in tmp_path.rglob(".*") if ".tmp" in p.name] == []
