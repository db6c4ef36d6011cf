"""Faults a job meets, injected into a whole driver and counted: kills at random moments, a full disk, damaged files.

Usage: python bench/faults.py [--kills 30] [--seed 0] [--out /tmp/esci_faults] [--task 1] [--results]
       [--skip kills,disk,corrupt]    (about 45 minutes on 2 free cores: kills 26, disk full 10, damaged files 8)

The driver (run_task<k>.sh, CPU profile, the embedded sample at 100 queries, the tiny encoder, pre-training on,
2 folds; task 1 with a cleaned member, so label cleaning runs too) runs once uninterrupted. Then:
- kills: fresh output folders, each driven to the end while its whole process group is SIGKILLed at seeded random
  moments, one planned per stage run (prepare, pre-training, each fold-training, label cleaning, blend and stack,
  submission, score; a moment drawn within that stage's uninterrupted duration) and the driver restarted after
  each. Every result (OOF and test tables, cv.csv, blend.json, the submission) is compared with the uninterrupted
  run's: identical means the submission byte for byte and every number within 1e-6.
- disk full: a copy of the finished folder loses one stage's outputs and its rerun gets a file-size limit (what a
  full disk does to the writes) that its own writes exceed. Handled: exit 2 with one line naming the path and the
  fix, no temporary left beside any target; then the rerun without the limit ends identical.
- damaged files: a finished artifact (a store's array, a checkpoint, an OOF table, a fingerprint, a lexical store)
  truncated or its head overwritten, and what reads it made to run again. Handled: the driver remakes it (and ends
  identical) or refuses in one line, exit 2; never read as data, never a traceback.
Prints one line: faults: kills=K stages=S resumed_identical=R max_abs_diff=X disk_full=D disk_full_one_line=L
corrupt=C corrupt_detected=E lost=N (lost: test examples of any finished run without exactly one prediction).
--results also replaces the section between the faults markers of bench/RESULTS.md (the line, the kills per stage,
every disk and damage case with its one line), with the command and commit; out/faults.json keeps the rows.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ("model_dir=tiny lr=1e-3 head_lr=3e-3 epochs=2 n_folds=2 init_from=pt pt_epochs=1 sample_queries=100 "
             "members=['t2_a','t1_a_clean']")
RESULT_FILES = re.compile(r"(oof|test)\.parquet$|cv\.csv$|blend\.json$|submissions/.*\.csv$|test_score\.json$")
TEMPORARY = re.compile(r"^\..+\.(tmp|old)?\d+(\.[^.]+)?$")
STAGES = {"01_prepare": "prepare", "02_pretrain": "pretrain", "03_train": "train", "04_clean_labels": "clean_labels",
          "05_blend": "blend", "06_submit": "submit", "07_score": "score"}
TOL = 1e-6


class Run:
    """One driver run in `out`. `plan`: [(stage key, seconds into it)], consumed in order: the job is killed when
    the stage run of the first entry's key has lasted that long; an entry whose stage run ends sooner is dropped."""

    def __init__(self, task: int, out: Path, log: Path, plan: list | None = None, fsize: int | None = None):
        plan = plan if plan is not None else []
        self.timeline: list[tuple[str, float, float]] = []  # (stage key, start, end) relative to the run's start
        self.killed: tuple[str, float, str] | None = None  # (stage key, seconds into it, its last log line)
        env = {**os.environ, "OUTPUT_DIR": str(out), "DATA_DIR": "sample", "PYTHON": sys.executable,
               "OVERRIDES": OVERRIDES, "PYTHONPATH": str(ROOT / "src")}

        def limit():
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        t0 = time.monotonic()
        # through a pipe: the file-size limit is for the job's own files, not its log
        proc = subprocess.Popen(["bash", str(ROOT / f"run_task{task}.sh")], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=limit, cwd=ROOT)
        copier = threading.Thread(target=copy_to, args=(proc.stdout, log))
        copier.start()
        current, since = None, 0.0
        while proc.poll() is None:
            now = time.monotonic() - t0
            key = stage_key(proc.pid)
            if key != current:
                if current is not None:
                    self.timeline.append((current, since, now))
                    if plan and plan[0][0] == current:
                        plan.pop(0)
                current, since = key, now
            if key is not None and plan and plan[0][0] == key and now - since >= plan[0][1]:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                self.killed = (key, now - since, last_line(log))
                plan.pop(0)
                break
            time.sleep(0.02)
        if current is not None and self.killed is None:
            self.timeline.append((current, since, time.monotonic() - t0))
        copier.join()
        self.rc = proc.returncode
        self.seconds = time.monotonic() - t0


def copy_to(stream, log: Path) -> None:
    with open(log, "ab") as f:
        for chunk in iter(lambda: stream.read1(65536), b""):
            f.write(chunk)
            f.flush()


def stage_key(pid: int) -> str | None:
    """'<stage> <configs> fold=<k>' of the stage script the driver is running, or None between stages."""
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for p in procs:
        try:
            args = p.cmdline()
        except psutil.Error:
            continue
        script = next((Path(a).stem for a in args if Path(a).stem in STAGES), None)
        if script:
            rest = [Path(a).stem if a.endswith(".py") else a for a in args[args.index(next(
                a for a in args if Path(a).stem == script)) + 1:] if a.endswith(".py") or a.startswith("fold=")]
            return " ".join([STAGES[script]] + [r for r in rest if r not in ("cpu",)])
    return None


def last_line(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1][:90] if lines else ""


def remade_line(log: Path) -> str:
    """The log's line saying a damaged file is made again, or its last line."""
    said = [ln for ln in log.read_text(errors="replace").splitlines() if "damaged (" in ln and " again" in ln]
    return said[0] if said else last_line(log)


def results(out: Path) -> dict[str, Path]:
    return {str(p.relative_to(out)): p for p in sorted(out.rglob("*")) if p.is_file() and RESULT_FILES.search(
        str(p.relative_to(out)))}


def compare(ref: Path, out: Path) -> tuple[bool, float, list[str]]:
    """(identical, max abs difference of any number, what differs) between two finished runs' results."""
    a, b = results(ref), results(out)
    diffs, worst = [f"missing {k}" for k in a if k not in b] + [f"extra {k}" for k in b if k not in a], 0.0
    for k in a.keys() & b.keys():
        if "submissions/" in k:
            if a[k].read_bytes() != b[k].read_bytes():
                diffs.append(f"{k} bytes")
            continue
        if k.endswith(".json"):
            x, y = pd.json_normalize(json.loads(a[k].read_text())), pd.json_normalize(json.loads(b[k].read_text()))
        else:
            x, y = (pd.read_parquet(a[k]), pd.read_parquet(b[k])) if k.endswith(".parquet") else \
                (pd.read_csv(a[k]), pd.read_csv(b[k]))
        if list(x.columns) != list(y.columns) or len(x) != len(y):
            diffs.append(f"{k} shape")
            continue
        for c in x.columns:
            if pd.api.types.is_numeric_dtype(x[c]) and pd.api.types.is_numeric_dtype(y[c]):
                d = np.abs(x[c].to_numpy(float) - y[c].to_numpy(float))
                d = np.where(np.isnan(d) & np.isnan(x[c].to_numpy(float)) & np.isnan(y[c].to_numpy(float)), 0, d)
                worst = max(worst, float(np.nanmax(d, initial=0)) if not np.isnan(d).any() else float("inf"))
                if np.isnan(d).any() or (d > TOL).any():
                    diffs.append(f"{k}:{c}")
            elif not x[c].astype(str).equals(y[c].astype(str).str.replace(str(out), str(ref), regex=False)):
                diffs.append(f"{k}:{c}")
    return not diffs, worst, diffs


def lost(ref: Path, out: Path) -> int:
    """Test examples of the reference submission without exactly one prediction in `out`'s."""
    n = 0
    for k, p in results(ref).items():
        if "submissions/" in k:
            want, mine = pd.read_csv(p, dtype=str), out / k
            key = ["example_id"] if "example_id" in want else ["query_id", "product_id"]
            got = pd.read_csv(mine, dtype=str).groupby(key).size() if mine.exists() else pd.Series(dtype=int)
            n += int((got.reindex(pd.MultiIndex.from_frame(want[key]) if len(key) > 1 else want[key[0]]).fillna(0)
                      != 1).sum())
    return n


def temporaries(out: Path) -> list[str]:
    return [str(p.relative_to(out)) for p in out.rglob(".*") if TEMPORARY.match(p.name)]


def one_line_error(log: Path, start: int) -> str | None:
    """The error line of a run whose output starts at byte `start` of `log`, when it is one line and no traceback."""
    text = log.read_text(errors="replace")[start:]
    if "Traceback" in text:
        return None
    errors = [ln for ln in text.splitlines() if "error:" in ln]
    return errors[-1] if len(errors) == 1 else None


def kill_runs(task, ref_timeline, work, want, rng, ref, rows):
    """Chains of killed and resumed runs until `want` kills were made; each chain compared with the reference."""
    kills, chain, stats = 0, 0, {"identical": 0, "chains": 0, "worst": 0.0, "lost": 0, "stages": set()}
    while kills < want:
        out, log = work / f"kill{chain}", work / f"kill{chain}.log"
        shutil.rmtree(out, ignore_errors=True)
        log.unlink(missing_ok=True)
        plan = [(key, rng.uniform(0.05, 0.95) * (end - start)) for key, start, end in ref_timeline
                if end - start > 0.3]
        while True:
            run = Run(task, out, log, plan=plan)
            if run.killed is None:
                break
            key, at, line = run.killed
            kills += 1
            stats["stages"].add(key.split()[0])
            rows.append({"fault": "kill", "stage": key, "at_s": round(at, 2), "last log line": line, "chain": chain})
        same, worst, diffs = compare(ref, out) if run.rc == 0 else (False, float("inf"), [f"exit {run.rc}"])
        for r in rows:
            if r.get("chain") == chain and r["fault"] == "kill":
                r["outcome"] = "identical" if same else "; ".join(diffs[:3])
        stats["identical"] += same * sum(r.get("chain") == chain and r["fault"] == "kill" for r in rows)
        stats["worst"] = max(stats["worst"], worst)
        stats["lost"] += lost(ref, out) if run.rc == 0 else 0
        print(f"chain {chain}: {sum(r.get('chain') == chain for r in rows)} kills, rc {run.rc}, "
              f"{'identical' if same else diffs[:3]}", flush=True)
        chain += 1
        if chain > 3 * want:
            break
    stats["kills"] = kills
    return stats


# (what, paths to remove from a finished run so that the failing stage writes again, file-size limit in bytes)
DISK_FULL = [("prepare", ["cpu/*"], 40 * 1024),
             ("pre-training", ["cpu/tiny/pt", "cpu/tiny/t2_a", "cpu/tiny/t1_a", "cpu/tiny/t1_a_clean",
                               "cpu/tiny/blend_t1", "cpu/tiny/submissions"], 256 * 1024),
             ("fold-training", ["cpu/tiny/t1_a_clean/fold1", "cpu/tiny/blend_t1", "cpu/tiny/submissions"], 64 * 1024),
             ("label cleaning", ["cpu/tiny/t1_a/clean_report.json", "cpu/tiny/t1_a/label_issues.parquet",
                                 "cpu/tiny/t1_a_clean", "cpu/tiny/blend_t1", "cpu/tiny/submissions"], 2 * 1024),
             ("lexical features, blend and stack",
              ["cpu/features/lexical_*", "cpu/tiny/blend_t1", "cpu/tiny/submissions"], 8 * 1024),
             ("submission", ["cpu/tiny/submissions", "cpu/tiny/blend_t1/test_score.json"], 1024)]


def damage_truncate(p: Path):
    p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)])


def damage_head(p: Path):
    data = bytearray(p.read_bytes())
    data[:16] = b"\0" * min(16, len(data))
    p.write_bytes(bytes(data))


# (what, glob of the file to damage, how, paths to remove so that it is read again)
CORRUPT = [("token store array, truncated", "cpu/features/tok_*/product_tokens.npy", damage_truncate,
            ["cpu/tiny/t2_a/fold1", "cpu/tiny/blend_t1", "cpu/tiny/submissions"]),
           ("token store array, head overwritten", "cpu/features/tok_*/query_tokens.npy", damage_head,
            ["cpu/tiny/t2_a/fold1", "cpu/tiny/blend_t1", "cpu/tiny/submissions"]),
           ("pre-training corpora array, truncated", "cpu/features/pt_*/text_tokens.npy", damage_truncate,
            ["cpu/tiny/pt", "cpu/tiny/t2_a", "cpu/tiny/t1_a", "cpu/tiny/t1_a_clean", "cpu/tiny/blend_t1",
             "cpu/tiny/submissions"]),
           ("pre-trained encoder weights, truncated", "cpu/tiny/pt/encoder/model.safetensors", damage_truncate,
            ["cpu/tiny/t2_a/fold1", "cpu/tiny/blend_t1", "cpu/tiny/submissions"]),
           ("fold checkpoint, truncated (read by the export)", "cpu/tiny/t2_a/fold0/best.pt", damage_truncate, []),
           ("OOF table, truncated", "cpu/tiny/t2_a/fold0/oof.parquet", damage_truncate,
            ["cpu/tiny/blend_t1", "cpu/tiny/submissions"]),
           ("test predictions, head overwritten", "cpu/tiny/t2_a/fold1/test.parquet", damage_head,
            ["cpu/tiny/blend_t1", "cpu/tiny/submissions"]),
           ("fingerprint JSON, truncated", "cpu/tiny/t2_a/fold0/fingerprint.json", damage_truncate, []),
           ("lexical feature store, truncated", "cpu/features/lexical_*.parquet", damage_truncate,
            ["cpu/tiny/blend_t1", "cpu/tiny/submissions"]),
           ("prepared examples, truncated", "cpu/data/examples.parquet", damage_truncate,
            ["cpu/tiny/blend_t1", "cpu/tiny/submissions"])]


def finished_case(task: int, work: Path, remove: list[str]) -> Path:
    """work/case: a finished run, restored from its copy (made once, in that same folder: a prepared folder knows
    where its source was), less `remove`."""
    case, kept = work / "case", work / "case_finished"
    if not kept.exists():
        shutil.rmtree(case, ignore_errors=True)
        if Run(task, case, work / "case_finished.log").rc != 0:
            sys.exit(f"faults: the run for the disk and damage cases failed; see {work / 'case_finished.log'}")
        shutil.copytree(case, kept, symlinks=True)  # copy2 keeps the modification times the prepared data checks
    shutil.rmtree(case, ignore_errors=True)
    shutil.copytree(kept, case, symlinks=True)
    for r in remove:
        for p in case.glob(r):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return case


def disk_full_runs(task, ref, work, rows):
    handled = 0
    for what, remove, fsize in DISK_FULL:
        log = work / f"disk_{what.replace(' ', '_')}.log"
        out = finished_case(task, work, remove)
        log.unlink(missing_ok=True)
        run = Run(task, out, log, fsize=fsize)
        line, left = one_line_error(log, 0), temporaries(out)
        ok = run.rc == 2 and line is not None and not left
        again = Run(task, out, log)
        same = again.rc == 0 and compare(ref, out)[0]
        handled += ok and same
        rows.append({"fault": "disk full", "stage": what, "at_s": f"{fsize // 1024} KiB limit",
                     "last log line": (line or last_line(log))[:90],
                     "outcome": f"exit {run.rc}" + (", one line" if line else ", not one line") +
                                (f", temporaries {left[:2]}" if left else "") +
                                (", rerun identical" if same else ", rerun differs")})
        print(f"disk full at {what}: exit {run.rc}, {'handled' if ok and same else rows[-1]['outcome']}", flush=True)
    return len(DISK_FULL), handled


def corrupt_runs(task, ref, work, rows):
    detected = 0
    for what, pattern, damage, remove in CORRUPT:
        log = work / f"damaged_{len(rows)}.log"
        out = finished_case(task, work, remove)
        log.unlink(missing_ok=True)
        target, = out.glob(pattern)
        damage(target)
        bad = target.read_bytes()
        run = Run(task, out, log)
        if run.rc == 0 and "export" in what:  # the driver does not read a finished fold's weights; the export does
            start = log.stat().st_size
            with open(log, "ab") as f:
                rc = subprocess.run([sys.executable, "-m", "esci.predict", "export", str(target.parent),
                                     str(work / "export")], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                                    env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).returncode
            line = one_line_error(log, start) if rc == 2 else None
            ok, outcome = line is not None, f"export exit {rc}" + (", one line" if line else ", not one line")
        else:
            line = one_line_error(log, 0)
            same = run.rc == 0 and compare(ref, out)[0]
            left = target.exists() and target.read_bytes() == bad
            ok = (same and not left) or (run.rc == 2 and line is not None)
            outcome = ("remade, identical" if same and not left else "not read, identical" if same else
                       f"exit {run.rc}" + (", one line" if line else (", read as data" if run.rc == 0 else
                                                                      ", traceback")))
        detected += ok
        rows.append({"fault": "damaged file", "stage": what, "at_s": "", "last log line": (line or remade_line(log))[:90],
                     "outcome": outcome})
        print(f"damaged {what}: {rows[-1]['outcome']}", flush=True)
    return len(CORRUPT), detected


def markdown(rows: list[dict], columns: list[str]) -> str:
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)] +
                     ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows])


def write_results(rows: list[dict], line: str, argv: list[str], minutes: float, work: Path) -> None:
    """bench/RESULTS.md's section between the faults markers: the line, the kills per stage and every disk-full and
    damaged-file case with its one line (the case's folder written OUTPUT_DIR)."""
    path = ROOT / "bench" / "RESULTS.md"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    kills = [r for r in rows if r["fault"] == "kill"]
    per_stage = {}
    for r in kills:
        per_stage.setdefault(r["stage"].split()[0], []).append(r)
    kill_rows = [{"stage": k, "kills": len(v), "seconds into the stage run": ", ".join(str(r["at_s"]) for r in v),
                  "outcome": ", ".join(sorted({r.get("outcome", "") for r in v}))} for k, v in per_stage.items()]
    other = [{**r, "last log line": str(r["last log line"]).replace(str(work / "case"), "OUTPUT_DIR")}
             for r in rows if r["fault"] != "kill"]
    section = (f"<!-- faults -->\n`python bench/faults.py {' '.join(argv)}` at {commit} (2 cores, "
               f"{time.strftime('%Y-%m-%d')}, {minutes:.0f} minutes):\n\n`{line}`\n\n"
               + (markdown(kill_rows, list(kill_rows[0])) + "\n\n" if kill_rows else "")
               + (markdown(other, ["fault", "stage", "at_s", "last log line", "outcome"]) + "\n" if other else "")
               + "<!-- /faults -->")
    text = path.read_text()
    text = re.sub(r"<!-- faults -->.*?<!-- /faults -->", lambda _: section, text, flags=re.S) \
        if "<!-- faults -->" in text else text + "\n" + section + "\n"
    path.write_text(text)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task", type=int, default=1, choices=(1, 2, 3))
    ap.add_argument("--out", default="/tmp/esci_faults")
    ap.add_argument("--results", action="store_true", help="write the per-fault table to bench/RESULTS.md")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: kills, disk, corrupt")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    ref, log = work / "reference", work / "reference.log"
    if not (ref / "cpu" / "tiny" / "submissions").exists():
        shutil.rmtree(ref, ignore_errors=True)
        log.unlink(missing_ok=True)
        first = Run(args.task, ref, log)
        if first.rc != 0:
            sys.exit(f"faults: the uninterrupted run failed (exit {first.rc}); see {log}")
        (work / "timeline.json").write_text(json.dumps(first.timeline))
        print(f"reference: {first.seconds:.0f} s, {len(first.timeline)} stage runs", flush=True)
    timeline = json.loads((work / "timeline.json").read_text())
    rows: list[dict] = []
    skip = set(args.skip.split(","))
    ks = kill_runs(args.task, timeline, work, args.kills, random.Random(args.seed), ref, rows) \
        if "kills" not in skip else {"kills": 0, "stages": set(), "identical": 0, "worst": 0.0, "lost": 0}
    d, dl = disk_full_runs(args.task, ref, work, rows) if "disk" not in skip else (0, 0)
    c, ce = corrupt_runs(args.task, ref, work, rows) if "corrupt" not in skip else (0, 0)
    line = (f"faults: kills={ks['kills']} stages={len(ks['stages'])} resumed_identical={ks['identical']} "
            f"max_abs_diff={ks['worst']:.1e} disk_full={d} disk_full_one_line={dl} corrupt={c} corrupt_detected={ce} "
            f"lost={ks['lost']}")
    print(pd.DataFrame(rows).drop(columns="chain", errors="ignore").fillna("").to_string(index=False))
    print(line)
    (work / "faults.json").write_text(json.dumps({"line": line, "rows": rows}, default=str))
    if args.results:
        write_results(rows, line, argv, (time.monotonic() - t0) / 60, work)


if __name__ == "__main__":
    main(sys.argv[1:])
