"""Two CPU processes through `accelerate launch` (torchrun underneath, gloo backend) train one fold and write
one OOF file covering the fold's rows once; each process took half the batches."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def test_two_processes_one_oof(tmp_path):
    common = [f"output_dir={tmp_path}", "data_dir=sample", "sample_queries=120", "model_dir=tiny",
              "epochs=1", "name=ddp", "fold=0", "batch_size=16"]
    subprocess.run([sys.executable, "src/01_prepare.py", "configs/cpu.py", *common], cwd=ROOT, check=True,
                   capture_output=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "src/03_train.py", "configs/cpu.py", *common], cwd=ROOT, capture_output=True,
                         text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    fold = tmp_path / "cpu/tiny/ddp/fold0"
    metrics = json.loads((fold / "metrics.json").read_text())
    assert metrics["steps"] == math.ceil(metrics["train_rows"] / 16) // 2
    oof = pd.read_parquet(fold / "oof.parquet")
    examples = pd.read_parquet(tmp_path / "cpu/data/examples.parquet")
    val = examples.query("fold == 0 and large_version == 1")
    assert sorted(oof.example_id) == sorted(val.example_id)


def test_two_processes_pretrain(tmp_path):
    """DDP with per-task heads: parameters a batch leaves unused must not stall or fail the step."""
    common = [f"output_dir={tmp_path}", "data_dir=sample", "sample_queries=120", "model_dir=tiny",
              "pt_max_products=200", "pt_batch_size=16", "pt_epochs=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "src/02_pretrain.py", "configs/cpu.py", "configs/pt.py", *common], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / "cpu/tiny/pt/metrics.json").read_text())
    batches = sum(math.ceil(fit / 16) for fit, _ in metrics["rows"].values())
    assert metrics["steps"] == batches // 2 and (tmp_path / "cpu/tiny/pt/encoder/model.safetensors").exists()
