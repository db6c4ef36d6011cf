#!/usr/bin/env bash
# GPU check: in one device call of at most 9 minutes (one H100 or H200, 16 cores), what the project does on a GPU.
#
# Usage: bash bench/gpu_check.sh OUTDIR [WORKDIR]
#   OUTDIR   gets gpu_check.json (everything measured) and gpu_check.log (every part's output)
#   WORKDIR  the sample, the stages' outputs (checkpoints of about 1 GB), logs and caches (default OUTDIR/work;
#            emptied of this script's folders first)
# Through the device tool, after `bash bench/gpu_assets.sh` HERE (writes .gpu/, about 45 MB, git-ignored):
#   run(command="bash bench/gpu_check.sh $OUT /tmp/gpu_check", carry=[".gpu"], timeout_s=540)
# ($OUT comes back, so the 1 GB of checkpoints stay in /tmp/gpu_check.) Then read
# /work/.device/.../gpu_check.json (the reply's files_at) and give the machine back.
#
# Parts, in order (each under `timeout`, all within BUDGET_S seconds, default 480):
#   install     pip-installs .gpu/wheels/*.whl (what the image lacks) into WORKDIR/site, put on PYTHONPATH
#   env         versions (torch, CUDA, transformers, tokenizers, accelerate, pandas, numpy, pyarrow, ...), GPU name,
#               the precision and optimizer the project picks, the encoder (.gpu/minilm: fp16 on disk, fp32 loaded)
#   tp_eager    bench/throughput.py --model xlmr-large: the project's loop vs a plain loop (train and inference)
#   sample      python -m esci.sample --queries 300 (the embedded sample)
#   then two chains side by side (separate output dirs, one GPU):
#     prepare, fold_killed, fold_resumed   src/03_train.py configs/gpu.py configs/t2_a.py fold=0 with MiniLM,
#         compile=True, precision=auto (bf16), fused AdamW, init_from= (no pre-training), a few hundred steps;
#         the first run stops at step KILL (ESCI_FAIL_AT_STEP: exit 3 after saving state.pt), the second resumes
#         ("resumed at epoch E, step KILL") and writes OOF and test predictions
#     prepare_b, fold_straight, pretrain   the same fold uninterrupted (name=t2_a_straight), to compare its metric
#         with the resumed run's; then src/02_pretrain.py configs/gpu.py configs/pt.py, shortened (1 epoch, all
#         1805 products of the sample, pt_max_len 128: a few hundred steps)
#   tp_compile  bench/throughput.py --model xlmr-large --compile
# gpu_check.json: ok, failed_step, error, dry_run, device, versions, model, throughput.{eager,compile} (ex/s of the
# four loops, ratios), fold (kill step, where it resumed, steps, micro-F1 of the resumed and the uninterrupted run
# and their difference, metric history before the kill and after the resume, peak GPU memory), pretrain (steps,
# held-out MLM loss, peak GPU memory), wall_s of each part. A failed part (non-zero exit, timeout, no resume) is
# named on stderr with its log's tail; the parts that do not need it still run (one GPU call should bring back all
# it can), then the JSON is written with failed_step (the first) and failures (all), and the script exits 1.
# install or env failing ends the check at once. With no failure the JSON's figures are checked (kill and
# resume happened, steps equal, peak memory present, ...), and a failed check is failed_step "checks", exit 1.
# On a GPU the resumed and uninterrupted metrics may differ slightly (atomics in EmbeddingBag's backward): the
# difference is recorded, not asserted.
#
# Without a GPU (or DRY_RUN=1) it is a DRY RUN of the same commands at tiny sizes (model_dir=tiny, --model tiny,
# a few rows, a handful of steps, still the kill and resume), with torch.compile's wrapper but no compilation
# (TORCH_COMPILE_DISABLE=1: inductor takes minutes on 2 cores); "dry_run": true, and there the resumed metric must
# equal the uninterrupted one to 1e-6 (tests/test_gpu_check.py runs it).
# Environment: PYTHON (default python3), MODEL_DIR (default .gpu/minilm if present, else the packaged MiniLM;
# tiny in a dry run), BUDGET_S, DRY_RUN=1, PARTS (subset of "throughput fold pretrain compile", default all: for
# a rerun of one part on a warm machine).
case "${1:-}" in -h|--help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0;; esac
set -eEuo pipefail  # -E: the ERR trap (record, report, exit 1) also fires inside functions
export PYTHONUNBUFFERED=1

[ $# -ge 1 ] && [ $# -le 2 ] || { sed -n '4,7p' "$0" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
WORK=${2:-$OUT/work}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
rm -rf "$WORK"/{site,logs,sample,out,out_straight,hf,inductor,triton} \
  "$WORK"/{env,tp_eager,tp_compile,kill}.json "$WORK"/{fold_args,pt_args,failed}.txt "$WORK/steps.tsv"
mkdir -p "$WORK/logs"
: > "$WORK/steps.tsv"
LOG=$OUT/gpu_check.log
: > "$LOG"
rm -f "$OUT/gpu_check.json"
PY=${PYTHON:-python3}
PARTS=${PARTS:-throughput fold pretrain compile}
T0=$(date +%s)
export PYTHONPATH=$ROOT/src:$WORK/site${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=$WORK/hf TOKENIZERS_PARALLELISM=false TQDM_MININTERVAL=10 \
  TORCHINDUCTOR_CACHE_DIR=$WORK/inductor TRITON_CACHE_DIR=$WORK/triton ESCI_DEBUG=1

if [ "${DRY_RUN:-0}" = 1 ] || ! $PY -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  DRY=1
  BUDGET_S=${BUDGET_S:-900}
  # one thread each: on a small shared CPU, torch's spinning threads make the parallel chains many times slower
  export TORCH_COMPILE_DISABLE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  MODEL=${MODEL_DIR:-tiny}
  TP=(--model tiny --train-rows 32 --infer-rows 64 --batch 16)
  # 40 training queries: 453 fit rows, 29 steps an epoch, evaluated at steps 14 and 29; killed after the first
  FOLD_SIZE=(ngram_buckets=4096 max_len=64 batch_size=16 eval_batch_size=64 epochs=2 max_train_queries=40
             max_test_rows=60 save_every=8)
  KILL=16
  PT_SIZE=(pt_max_products=60 pt_max_len=64 pt_batch_size=16 eval_batch_size=64)
else
  DRY=0
  BUDGET_S=${BUDGET_S:-480}
  MODEL=${MODEL_DIR:-}
  [ -n "$MODEL" ] || { [ -d .gpu/minilm ] && MODEL=$ROOT/.gpu/minilm; } || true
  TP=(--model xlmr-large --train-rows 4096 --infer-rows 16384)
  # fold 0 fits 2031 rows: 64 steps an epoch, 256 in all, evaluated every 32; killed mid-epoch 1
  FOLD_SIZE=(batch_size=32 epochs=4 save_every=96)
  KILL=96
  PT_SIZE=(pt_max_products=1805 pt_max_len=128 pt_batch_size=32)
fi
DEADLINE=$((T0 + BUDGET_S))
want() { [[ " $PARTS " == *" $1 "* ]]; }
WHEELS=0
compgen -G ".gpu/wheels/*.whl" > /dev/null && WHEELS=1

report() {
  $PY bench/gpu_report.py report --work "$WORK" --out "$OUT/gpu_check.json" --dry-run "$DRY" --kill-at "$KILL" \
    --budget "$BUDGET_S" --t0 "$T0" --parts "$PARTS" --wheels "$WHEELS" --parallel "${PARALLEL:-1}"
}

# failed STEP MESSAGE: records a failed part in WORK/failed.txt (the report names the first as failed_step) and
# prints the tail of its log. The parts that do not need it still run; the check exits 1 at the end.
failed() {
  printf '%s\t%s\n' "$1" "$2" >> "$WORK/failed.txt"
  echo "FAILED: $1: $2" >&2
  if [ -f "$WORK/logs/$1.log" ]; then
    echo "--- last lines of $WORK/logs/$1.log:" >&2
    tail -n 30 "$WORK/logs/$1.log" | tr '\r' '\n' | tail -n 30 >&2
  fi
}
# finish: the JSON and the summary (the report checks the results when nothing failed); exit 1 on any failure
finish() {
  trap - ERR
  report || { echo "FAILED: ${1:-see failed_step and error in $OUT/gpu_check.json}" >&2; exit 1; }
  exit 0
}
trap 'failed script "line $LINENO: a command failed"; finish' ERR

# run_step NAME CAP CMD...: CMD under `timeout` (CAP seconds, less when the budget ends sooner), its output in
# WORK/logs/NAME.log (then appended to OUTDIR/gpu_check.log); "NAME rc seconds" in WORK/steps.tsv; returns its status
# (124: timed out; 125: not started, the budget being spent)
run_step() {
  local name=$1 cap=$2 left rc=0 t0 wall
  shift 2
  left=$((DEADLINE - $(date +%s)))
  [ "$cap" -le "$left" ] || cap=$left
  if [ "$cap" -lt 15 ]; then
    echo "$name: not started, the budget (BUDGET_S=$BUDGET_S) is spent" | tee "$WORK/logs/$name.log"
    return 125
  fi
  echo "[$(date +%T)] $name: start (timeout ${cap}s)"
  t0=$(date +%s.%N)
  { echo "\$ $*"; timeout --kill-after=10 "$cap" "$@"; } > "$WORK/logs/$name.log" 2>&1 || rc=$?
  wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if [ "$rc" = 124 ]; then printf '\n%s: timed out after %ss\n' "$name" "$cap" >> "$WORK/logs/$name.log"; fi
  printf '%s\t%s\t%s\n' "$name" "$rc" "$wall" >> "$WORK/steps.tsv"
  { printf '\n===== %s (exit %s, %s s)\n' "$name" "$rc" "$wall"; cat "$WORK/logs/$name.log"; } >> "$LOG"
  echo "[$(date +%T)] $name: exit $rc, ${wall}s"
  return "$rc"
}
# step NAME CAP CMD...: run_step; a failure is recorded and returned (callers say what stops: `|| finish`, ...)
step() {
  local rc=0
  run_step "$@" || rc=$?
  local why=""
  [ "$rc" != 124 ] || why=" (timed out)"
  [ "$rc" != 125 ] || why=" (not started: the budget is spent)"
  [ "$rc" = 0 ] || { failed "$1" "exit status $rc$why"; return 1; }
}

echo "gpu_check: $([ $DRY = 1 ] && echo 'DRY RUN (no GPU)' || echo GPU), parts: $PARTS, budget ${BUDGET_S}s," \
     "model ${MODEL:-packaged MiniLM}; output $OUT, work $WORK"

# --- set-up: what the image lacks, and what ran (nothing goes on without them)
if [ $WHEELS = 1 ]; then
  step install 60 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" .gpu/wheels/*.whl || finish
fi
step env 90 $PY bench/gpu_report.py env "$WORK/env.json" "$MODEL" || finish

# --- throughput, no compile
if want throughput; then
  step tp_eager 150 $PY bench/throughput.py "${TP[@]}" --json "$WORK/tp_eager.json" || true
fi

# --- the real stages
COMMON=("model_dir=$MODEL" "data_dir=$WORK/sample")
FOLD=(configs/gpu.py configs/t2_a.py "${COMMON[@]}" init_from= fold=0 compile=True precision=auto "${FOLD_SIZE[@]}")
PT=(configs/gpu.py configs/pt.py "${COMMON[@]}" "output_dir=$WORK/out_straight" pt_epochs=1 "${PT_SIZE[@]}")
printf '%s\n' "${FOLD[@]}" > "$WORK/fold_args.txt"
printf '%s\n' "${PT[@]}" > "$WORK/pt_args.txt"
# chain A: the fold killed at step KILL, then resumed; chain B: the same fold uninterrupted, then pre-training.
# Separate output dirs (each builds its own feature stores); side by side on the one GPU unless its compute mode
# is exclusive. A failed step ends its chain (the next needs it), not the other chain.
chain_a() {
  local rc=0 dir
  step prepare 90 $PY src/01_prepare.py configs/gpu.py "${COMMON[@]}" "output_dir=$WORK/out" || return 1
  run_step fold_killed 240 env ESCI_FAIL_AT_STEP=$KILL $PY src/03_train.py "${FOLD[@]}" "output_dir=$WORK/out" \
    || rc=$?
  # output/<profile>/<backbone>/<name>/fold0
  dir=$(compgen -G "$WORK/out/gpu/*/t2_a/fold0" | head -n 1 || true)
  [ -n "$dir" ] || dir=$WORK/out/gpu/t2_a/fold0
  printf '{"rc": %s, "state_pt": %s, "metrics_json": %s}\n' "$rc" \
    "$([ -f "$dir/state.pt" ] && echo true || echo false)" \
    "$([ -f "$dir/metrics.json" ] && echo true || echo false)" > "$WORK/kill.json"
  if [ "$rc" != 3 ]; then failed fold_killed "exit status $rc, expected 3 (ESCI_FAIL_AT_STEP=$KILL)"; return 1; fi
  if [ ! -f "$dir/state.pt" ] || [ -f "$dir/metrics.json" ]; then
    failed fold_killed "after the kill: state.pt missing or metrics.json present in $dir"
    return 1
  fi
  step fold_resumed 200 $PY src/03_train.py "${FOLD[@]}" "output_dir=$WORK/out" || return 1
  if ! grep -q "resumed at epoch [0-9]*, step $KILL " "$WORK/logs/fold_resumed.log"; then
    failed fold_resumed "no 'resumed at epoch E, step $KILL' in its log"
    return 1
  fi
}
chain_b() {
  step prepare_b 90 $PY src/01_prepare.py configs/gpu.py "${COMMON[@]}" "output_dir=$WORK/out_straight" \
    || return 1
  if want fold; then
    step fold_straight 240 $PY src/03_train.py "${FOLD[@]}" "output_dir=$WORK/out_straight" name=t2_a_straight \
      || true
  fi
  if want pretrain; then
    step pretrain 150 $PY src/02_pretrain.py "${PT[@]}" || true
  fi
}
PARALLEL=1
if [ $DRY = 0 ] && command -v nvidia-smi > /dev/null; then
  mode=$(nvidia-smi --query-gpu=compute_mode --format=csv,noheader 2> /dev/null | head -n 1 || true)
  [ -z "$mode" ] || [ "$mode" = Default ] || PARALLEL=0
fi
if want fold || want pretrain; then
  if step sample 60 $PY -m esci.sample --queries 300 --out "$WORK/sample"; then
    pids=()
    if want fold; then
      chain_a &
      pids+=($!)
      [ $PARALLEL = 1 ] || wait "${pids[@]}" || true
    fi
    chain_b &
    pids+=($!)
    wait "${pids[@]}" || true  # each chain recorded its failures
  fi
fi

# --- throughput with torch.compile (last: compiling XLM-R large takes the longest)
if want compile; then
  step tp_compile 300 $PY bench/throughput.py "${TP[@]}" --compile --json "$WORK/tp_compile.json" || true
fi

finish
