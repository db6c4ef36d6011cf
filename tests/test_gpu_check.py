"""bench/gpu_check.sh as a dry run (no GPU, tiny sizes): every part runs, the fold killed mid-way resumes to the
uninterrupted result, gpu_check.json holds every field; a failing part is named and fails the script."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {"ok", "failed_step", "error", "failures", "dry_run", "parts", "budget_s", "stages_in_parallel", "device",
          "versions", "installed_wheels", "iterstrat_from", "model_dir", "model_from", "model_dtype", "precision",
          "fused_adamw", "throughput", "fold", "pretrain", "wall_s"}
DEVICE = {"gpu", "gpu_count", "gpu_mem_gib", "capability", "bf16", "cpu_count", "driver", "compute_mode"}
VERSIONS = {"python", "torch", "cuda", "transformers", "tokenizers", "accelerate", "pandas", "numpy", "pyarrow",
            "scikit-learn", "iterative-stratification"}
THROUGHPUT = {"model", "device", "rows", "batch", "compile", "precision", "ex_per_s", "ratio_train", "ratio_infer",
              "peak_gpu_mem_gib"}
LOOPS = {"project_train", "plain_train", "project_infer", "plain_infer"}
FOLD = {"experiment", "profile", "fold", "args", "kill_at_step", "killed_rc", "state_saved_at_kill",
        "complete_after_kill", "resumed_at", "steps", "steps_uninterrupted", "train_rows", "val_rows", "test_rows",
        "test_predictions", "metric_name", "metric_resumed", "metric_uninterrupted", "metric_abs_diff",
        "metrics_match", "history_before_kill", "history_after_resume", "history_uninterrupted",
        "history_before_kill_matches", "peak_gpu_mem_gib", "peak_gpu_mem_gib_resumed"}
PRETRAIN = {"args", "steps", "rows", "start", "best", "encoder_saved", "peak_gpu_mem_gib"}
PARTS = {"env", "tp_eager", "sample", "prepare", "fold_killed", "fold_resumed", "prepare_b", "fold_straight",
         "pretrain", "tp_compile", "total"}


def gpu_check(out: Path, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("MODEL_DIR", "PARTS", "BUDGET_S")}
    return subprocess.run(["bash", "bench/gpu_check.sh", str(out)], cwd=ROOT, capture_output=True, text=True,
                          env={**base, "DRY_RUN": "1", "PYTHON": sys.executable, **env}, timeout=900)


def test_dry_run_end_to_end(tmp_path):
    res = gpu_check(tmp_path / "out")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "gpu_check DRY RUN OK" in res.stdout
    r = json.loads((tmp_path / "out/gpu_check.json").read_text())
    assert FIELDS <= r.keys() and DEVICE <= r["device"].keys() and VERSIONS <= r["versions"].keys()
    assert r["ok"] is True and r["dry_run"] is True and r["failed_step"] is None and r["failures"] == []
    assert all(r["versions"][k] for k in VERSIONS - {"cuda"}) and r["model_dtype"] == "float32"
    for mode, compiled in (("eager", False), ("compile", True)):
        t = r["throughput"][mode]
        assert THROUGHPUT <= t.keys() and t["compile"] is compiled and t["model"] == "tiny"
        assert t["ex_per_s"].keys() == LOOPS and all(v > 0 for v in t["ex_per_s"].values())
        assert t["ratio_train"] == pytest.approx(t["ex_per_s"]["project_train"] / t["ex_per_s"]["plain_train"])
    f = r["fold"]
    assert FOLD <= f.keys() and "compile=True" in f["args"] and "init_from=" in f["args"]
    assert f["killed_rc"] == 3 and f["state_saved_at_kill"] is True and f["complete_after_kill"] is False
    assert f["resumed_at"]["step"] == f["kill_at_step"] and f["resumed_at"]["line"].startswith("resumed at epoch")
    assert f["steps"] == f["steps_uninterrupted"] > f["kill_at_step"] and f["test_predictions"] is True
    assert f["metric_resumed"] == pytest.approx(f["metric_uninterrupted"], abs=1e-6) and f["metrics_match"] is True
    assert f["history_before_kill"] and f["history_after_resume"] and f["history_before_kill_matches"] is True
    for x, y in zip(f["history_before_kill"] + f["history_after_resume"], f["history_uninterrupted"], strict=True):
        assert x.keys() == y.keys() and x == pytest.approx(y, abs=1e-6)
    p = r["pretrain"]
    assert PRETRAIN <= p.keys() and p["steps"] > 0 and p["encoder_saved"] is True and "mlm_loss" in p["best"]
    assert PARTS <= r["wall_s"].keys() and all(v >= 0 for v in r["wall_s"].values())
    log = (tmp_path / "out/gpu_check.log").read_text()
    assert "===== fold_resumed (exit 0" in log and f["resumed_at"]["line"] in log


def test_a_failing_part_is_named(tmp_path):
    res = gpu_check(tmp_path / "out", MODEL_DIR=str(tmp_path / "no_model"), PARTS="fold")
    assert res.returncode == 1
    assert "FAILED: env" in res.stderr
    r = json.loads((tmp_path / "out/gpu_check.json").read_text())
    assert FIELDS <= r.keys() and r["ok"] is False and r["failed_step"] == "env" and r["fold"]["steps"] is None
