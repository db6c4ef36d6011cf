"""The Python half of bench/gpu_check.sh: what ran where, and the one JSON of everything the check measured.

  python bench/gpu_report.py env PATH MODEL_DIR     versions, device, the precision and optimizer the project
                                                    picks there, and the encoder loaded from MODEL_DIR -> PATH
  python bench/gpu_report.py report --work W --out PATH ...
                                                    gathers W's results into PATH (every field present, null when
                                                    not measured), with the failed parts listed in W/failed.txt
                                                    (else it checks the results), prints a summary; exits 1 when a
                                                    part or a check failed
`report` needs only the standard library, so it still writes the JSON when the stages' packages are broken.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

PACKAGES = ["transformers", "tokenizers", "accelerate", "pandas", "numpy", "pyarrow", "scikit-learn", "scipy",
            "iterative-stratification", "safetensors", "tqdm", "triton"]
FOLD_NAME, STRAIGHT_NAME, PROFILE = "t2_a", "t2_a_straight", "gpu"
TOL = 1e-6  # resumed vs uninterrupted fold metric, as tests/test_train.py (asserted on CPU only)


def nvidia_smi() -> dict:
    """Driver version and compute mode (an exclusive mode runs the stages' two chains one after the other)."""
    import subprocess
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,compute_mode", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.splitlines()[0].split(", ")
        return {"driver": out[0], "compute_mode": out[1]}
    except (OSError, IndexError, subprocess.SubprocessError):
        return {"driver": None, "compute_mode": None}


def env(path: str, model_dir: str) -> None:
    import importlib.metadata as md
    import os
    import platform

    import torch

    from esci.config import load_config
    from esci.loop import adamw, precision
    from esci.encoder import encoder_dir, load_encoder, load_tokenizer

    versions = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    for pkg in PACKAGES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    import iterstrat
    cuda = torch.cuda.is_available()
    props = torch.cuda.get_device_properties(0) if cuda else None
    device = {"gpu": torch.cuda.get_device_name(0) if cuda else None, "gpu_count": torch.cuda.device_count(),
              "gpu_mem_gib": props.total_memory / 2 ** 30 if props else None,
              "capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if cuda else None,
              "bf16": torch.cuda.is_bf16_supported() if cuda else None, "cpu_count": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "host": platform.node(), **nvidia_smi()}
    cfg = load_config("configs/gpu.py", overrides=[f"model_dir={model_dir}"])
    tok = load_tokenizer(model_dir)
    enc = load_encoder(model_dir, len(tok))
    if enc.dtype != torch.float32:
        sys.exit(f"{model_dir}: the encoder loads as {enc.dtype}, not torch.float32; fix: its config.json needs "
                 f"\"dtype\": \"float32\" (bench/gpu_assets.sh writes it)")
    opt = adamw([{"params": [torch.nn.Parameter(torch.zeros(1, device="cuda" if cuda else "cpu"))]}])
    info = {"versions": versions, "iterstrat_from": str(Path(iterstrat.__file__).parent.parent), "device": device,
            "model_dir": model_dir,
            "model_from": "tiny random BERT" if model_dir == "tiny" else str(encoder_dir(model_dir)),
            "model_dtype": str(enc.dtype).replace("torch.", ""),
            "model_params_m": sum(p.numel() for p in enc.parameters()) / 1e6, "precision": precision(cfg),
            "fused_adamw": bool(opt.defaults.get("fused"))}
    Path(path).write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info, indent=1))


def read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def metric_history(metrics: dict | None) -> list[dict]:
    return [] if not metrics else metrics.get("history", [])


def same_history(a: list[dict], b: list[dict], tol: float) -> bool | None:
    if not a or not b:
        return None
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.keys() != y.keys():
            return False
        for k in x:
            if isinstance(x[k], (int, float)) and isinstance(y[k], (int, float)):
                if not abs(x[k] - y[k]) <= tol:
                    return False
            elif x[k] != y[k]:
                return False
    return True


def run_dir(out: Path, name: str) -> Path:
    """out/<profile>/<backbone>/<name> (out/<profile>/<name> before runs were kept per backbone)."""
    hits = [p for p in [*sorted(out.glob(f"{PROFILE}/*/{name}")), out / PROFILE / name] if p.is_dir()]
    return hits[0] if hits else out / PROFILE / name


def fold_part(work: Path, kill_at: int, dry: bool) -> dict:
    runs = run_dir(work / "out", FOLD_NAME) / "fold0", run_dir(work / "out_straight", STRAIGHT_NAME) / "fold0"
    m, s = read(runs[0] / "metrics.json"), read(runs[1] / "metrics.json")
    resumed = None
    log = work / "logs" / "fold_resumed.log"
    if log.exists():
        hit = re.search(r"resumed at epoch (\d+), step (\d+)", log.read_text(errors="replace"))
        resumed = {"epoch": int(hit[1]), "step": int(hit[2]), "line": hit[0]} if hit else None
    kill = read(work / "kill.json") or {}
    metric = "micro_f1"
    a, b = (m or {}).get(metric), (s or {}).get(metric)
    diff = abs(a - b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
    hist = metric_history(m)
    before = [h for h in hist if h.get("step", 0) <= kill_at]
    return {
        "experiment": FOLD_NAME, "profile": PROFILE, "fold": 0,
        "args": (work / "fold_args.txt").read_text().split("\n")[:-1] if (work / "fold_args.txt").exists() else None,
        "kill_at_step": kill_at, "killed_rc": kill.get("rc"), "state_saved_at_kill": kill.get("state_pt"),
        "complete_after_kill": kill.get("metrics_json"), "resumed_at": resumed,
        "steps": (m or {}).get("steps"), "steps_uninterrupted": (s or {}).get("steps"),
        "train_rows": (m or {}).get("train_rows"), "val_rows": (m or {}).get("val_rows"),
        "test_rows": (m or {}).get("test_rows"), "test_predictions": (runs[0] / "test.parquet").exists(),
        "metric_name": metric, "metric_resumed": a, "metric_uninterrupted": b, "metric_abs_diff": diff,
        "metrics_match": diff is not None and diff <= TOL,
        "history_before_kill": before, "history_after_resume": hist[len(before):],
        "history_uninterrupted": metric_history(s),
        "history_before_kill_matches": same_history(before, [h for h in metric_history(s)
                                                             if h.get("step", 0) <= kill_at], TOL),
        "peak_gpu_mem_gib": (s or {}).get("peak_gpu_mem_gib"),
        "peak_gpu_mem_gib_resumed": (m or {}).get("peak_gpu_mem_gib"),
    }


def pretrain_part(work: Path) -> dict:
    pt = run_dir(work / "out_straight", "pt")
    m = read(pt / "metrics.json") or {}
    return {"args": (work / "pt_args.txt").read_text().split("\n")[:-1] if (work / "pt_args.txt").exists() else None,
            "steps": m.get("steps"), "rows": m.get("rows"), "start": m.get("start"), "best": m.get("best"),
            "encoder_saved": (pt / "encoder" / "config.json").exists(),
            "peak_gpu_mem_gib": m.get("peak_gpu_mem_gib")}


def checks(r: dict) -> list[str]:
    """What must hold for the check to pass, for the parts that ran."""
    bad = []
    parts = r["parts"]
    if "throughput" in parts and not r["throughput"]["eager"]:
        bad.append("throughput (eager): no figures")
    if "compile" in parts and not r["throughput"]["compile"]:
        bad.append("throughput (compile): no figures")
    for mode in ("eager", "compile"):
        t = r["throughput"][mode]
        if t and not all(v > 0 for v in t["ex_per_s"].values()):
            bad.append(f"throughput ({mode}): a loop measured nothing")
    if "fold" in parts:
        f = r["fold"]
        if f["killed_rc"] != 3 or not f["state_saved_at_kill"] or f["complete_after_kill"]:
            bad.append(f"fold: the kill at step {f['kill_at_step']} did not leave state.pt without metrics.json")
        if not f["resumed_at"] or f["resumed_at"]["step"] != f["kill_at_step"]:
            bad.append(f"fold: the second run did not resume at step {f['kill_at_step']} ({f['resumed_at']})")
        if f["steps"] is None or f["steps"] != f["steps_uninterrupted"] or f["steps"] <= f["kill_at_step"]:
            bad.append(f"fold: steps {f['steps']} (resumed) vs {f['steps_uninterrupted']} (uninterrupted)")
        if not isinstance(f["metric_resumed"], float) or not math.isfinite(f["metric_resumed"]):
            bad.append(f"fold: no finite {f['metric_name']}")
        if not f["test_predictions"]:
            bad.append("fold: no test.parquet")
        if r["dry_run"] and not f["metrics_match"]:  # on a GPU, atomics make runs differ slightly: recorded only
            bad.append(f"fold: resumed {f['metric_resumed']} != uninterrupted {f['metric_uninterrupted']}")
        if r["dry_run"] and not f["history_before_kill_matches"]:
            bad.append("fold: the history before the kill differs from the uninterrupted run's")
        if not r["dry_run"] and f["peak_gpu_mem_gib"] is None:
            bad.append("fold: no peak_gpu_mem_gib in metrics.json")
    if "pretrain" in parts:
        p = r["pretrain"]
        if not p["steps"] or not p["encoder_saved"]:
            bad.append("pretrain: no steps or no encoder/")
        if not r["dry_run"] and p["peak_gpu_mem_gib"] is None:
            bad.append("pretrain: no peak_gpu_mem_gib in metrics.json")
    return bad


def summary(r: dict) -> str:
    def fmt(x, spec=".3f"):
        return "-" if x is None else format(x, spec) if isinstance(x, float) else str(x)
    d, v, f, p = r["device"] or {}, r["versions"] or {}, r["fold"], r["pretrain"]
    status = "OK" if r["ok"] else f"FAILED at {r['failed_step']}: {r['error']}"
    lines = [f"gpu_check {'DRY RUN ' if r['dry_run'] else ''}{status}",
             f"  device {d.get('gpu') or 'no GPU'}; torch {v.get('torch')} (CUDA {v.get('cuda')}), transformers "
             f"{v.get('transformers')}, tokenizers {v.get('tokenizers')}, accelerate {v.get('accelerate')}, pandas "
             f"{v.get('pandas')}, numpy {v.get('numpy')}, pyarrow {v.get('pyarrow')}"]
    for mode, t in r["throughput"].items():
        if t:
            e = t["ex_per_s"]
            lines.append(f"  throughput {t['model']} {mode}: train {e['project_train']:.1f} vs {e['plain_train']:.1f} "
                         f"ex/s ({t['ratio_train']:.2f}x), infer {e['project_infer']:.1f} vs {e['plain_infer']:.1f} "
                         f"ex/s ({t['ratio_infer']:.2f}x), peak {fmt(t.get('peak_gpu_mem_gib'), '.1f')} GiB")
    lines.append(f"  fold {f['experiment']}/0: killed at step {f['kill_at_step']} (rc {f['killed_rc']}), resumed at "
                 f"{(f['resumed_at'] or {}).get('line')}; steps {f['steps']} / {f['steps_uninterrupted']}; "
                 f"{f['metric_name']} resumed {fmt(f['metric_resumed'], '.6f')} uninterrupted "
                 f"{fmt(f['metric_uninterrupted'], '.6f')} (diff {fmt(f['metric_abs_diff'], '.2e')}); peak "
                 f"{fmt(f['peak_gpu_mem_gib'], '.2f')} GiB")
    lines.append(f"  pretrain: {p['steps']} steps, held-out MLM loss {fmt((p['start'] or {}).get('mlm_loss'))} -> "
                 f"{fmt((p['best'] or {}).get('mlm_loss'))}; peak {fmt(p['peak_gpu_mem_gib'], '.2f')} GiB")
    lines.append("  wall s: " + ", ".join(f"{k} {v:.0f}" for k, v in r["wall_s"].items()))
    return "\n".join(lines)


def report(a) -> int:
    work = Path(a.work)
    e = read(work / "env.json") or {}
    wall = {}
    if (work / "steps.tsv").exists():
        for line in (work / "steps.tsv").read_text().splitlines():
            name, _, secs = line.split("\t")
            wall[name] = float(secs)
    wall["total"] = time.time() - a.t0
    failures = []
    if (work / "failed.txt").exists():
        failures = [dict(zip(("step", "error"), line.split("\t", 1)))
                    for line in (work / "failed.txt").read_text().splitlines() if line]
    r = {"ok": not failures, "failed_step": failures[0]["step"] if failures else None,
         "error": "; ".join(f"{f['step']}: {f.get('error')}" for f in failures) or None, "failures": failures,
         "dry_run": bool(a.dry_run), "parts": a.parts.split(), "budget_s": a.budget,
         "stages_in_parallel": bool(a.parallel), "device": e.get("device"), "versions": e.get("versions"),
         "installed_wheels": sorted(p.name for p in Path(".gpu/wheels").glob("*.whl")) if a.wheels else [],
         "iterstrat_from": e.get("iterstrat_from"), "model_dir": e.get("model_dir"), "model_from": e.get("model_from"),
         "model_dtype": e.get("model_dtype"), "precision": e.get("precision"), "fused_adamw": e.get("fused_adamw"),
         "throughput": {"eager": read(work / "tp_eager.json"), "compile": read(work / "tp_compile.json")},
         "fold": fold_part(work, a.kill_at, a.dry_run), "pretrain": pretrain_part(work), "wall_s": wall}
    bad = [] if failures else checks(r)
    if bad:
        r.update(ok=False, failed_step="checks", error="; ".join(bad),
                 failures=[{"step": "checks", "error": b} for b in bad])
    Path(a.out).write_text(json.dumps(r, indent=1) + "\n")
    print(summary(r))
    print(f"wrote {a.out}")
    return 0 if r["ok"] else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("env")
    e.add_argument("path")
    e.add_argument("model_dir")
    r = sub.add_parser("report")
    r.add_argument("--work", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--dry-run", type=int, default=0)
    r.add_argument("--kill-at", type=int, required=True)
    r.add_argument("--budget", type=int, default=0)
    r.add_argument("--t0", type=float, default=time.time())
    r.add_argument("--parts", default="")
    r.add_argument("--wheels", type=int, default=0)
    r.add_argument("--parallel", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "env":
        env(a.path, a.model_dir)
    else:
        sys.exit(report(a))


if __name__ == "__main__":
    main()
