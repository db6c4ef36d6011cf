# Shared by run_task{1,2,3}.sh: their --help, and the stage commands, each skipped by the stage itself when its
# outputs are complete. Environment: see usage below.
usage() {
  sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"
  cat <<EOF

Usage: bash $(basename "$0")            (no arguments; everything is set by the environment)
Environment (all optional):
  PROFILE     cpu (default): the embedded sample, or real data within a CPU budget (configs/cpu.py)
              gpu: the paper's settings for the real release on one or more GPUs (configs/gpu.py)
  DATA_DIR    folder of the ESCI parquet files (default input/; without them there, the cpu profile generates
              the embedded sample); DATA_DIR=sample always uses the sample
  MODEL_DIR   a local Hugging Face encoder (default: the packaged all-MiniLM-L6-v2)
  OUTPUT_DIR  where results go (default output/)
  OVERRIDES   "key=value ..." for every stage, e.g. "max_len=64 epochs=1" (python src/03_train.py --help lists keys)
  LAUNCH      e.g. "accelerate launch --num_processes 8" to train on several GPUs or nodes
  PYTHON      the interpreter (default python); ESCI_DEBUG=1 shows tracebacks instead of one-line errors
Results: OUTPUT_DIR/<profile>/<encoder>/submissions/ (the submission), .../blend_t<k>/cv.csv (CV of the blend, the
stack and each member), OUTPUT_DIR/<profile>/results.csv (every experiment and blend). A rerun skips finished work.
EOF
}
case "${1:-}" in
  "") ;;
  -h|--help) usage; exit 0 ;;
  *) echo "$(basename "$0"): unknown argument '$1'; fix: no arguments (the environment sets everything; --help)" >&2
     exit 2 ;;
esac
PROFILE=${PROFILE:-cpu}
case "$PROFILE" in  # the profiles' old names keep working
  sample) echo "PROFILE=sample is now called PROFILE=cpu (the same settings; results under output/cpu/)" >&2; PROFILE=cpu ;;
  full) echo "PROFILE=full is now called PROFILE=gpu (the same settings; results under output/gpu/)" >&2; PROFILE=gpu ;;
esac
PYTHON=${PYTHON:-python}
LAUNCH=${LAUNCH:-$PYTHON}
P=configs/$PROFILE.py
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
[ -f "$P" ] || { echo "PROFILE=$PROFILE: no $P; fix: use cpu or gpu" >&2; exit 2; }

# one driver at a time per output folder: the lock is held by this shell's descriptor 9 (and the stages that
# inherit it) until the driver and every stage it started have ended, killed ones included
OUT=${OUTPUT_DIR:-output}
mkdir -p "$OUT"
exec 9>>"$OUT/.driver.lock"
$PYTHON -m esci.io lock 9 "$OUT" "$(basename "$0")" || exit 2

# OVERRIDES="key=value ..." is appended to every stage (tests shrink the run with it)
read -r -a OV <<< "${OVERRIDES:-}"

prepare() { $PYTHON src/01_prepare.py "$P" ${OV[@]+"${OV[@]}"}; }
# the pre-training run the experiment starts from (its init_from; nothing when that is empty)
pretrain() {
  local run
  run=$($PYTHON -m esci.config "$P" "configs/$1.py" ${OV[@]+"${OV[@]}"} --get init_from)
  if [ -z "$run" ]; then echo "pre-training: off for $1 (init_from is empty)"; return 0; fi
  $LAUNCH src/02_pretrain.py "$P" "configs/$run.py" ${OV[@]+"${OV[@]}"}
}
# the folds not finished yet (one light process; the finished ones are reported as skipped), each trained
train_all_folds() {
  local k pending
  pending=$($PYTHON -m esci.config "$P" "configs/$1.py" ${OV[@]+"${OV[@]}"} --pending-folds)
  for k in $pending; do
    $LAUNCH src/03_train.py "$P" "configs/$1.py" ${OV[@]+"${OV[@]}"} fold="$k"
  done
}
clean_labels() { $PYTHON src/04_clean_labels.py "$P" "configs/$1.py" ${OV[@]+"${OV[@]}"}; }
blend() { $PYTHON src/05_blend.py "$P" "configs/$1.py" ${OV[@]+"${OV[@]}"}; }
submit() { $PYTHON src/06_submit.py "$P" "configs/$1.py" ${OV[@]+"${OV[@]}"}; }
score() { $PYTHON src/07_score.py "$P" "configs/$1.py" ${OV[@]+"${OV[@]}"}; }
get() { $PYTHON -m esci.config "$P" "configs/$1.py" ${OV[@]+"${OV[@]}"} --get "$2"; }
# an experiment with its pre-training run and, for a cleaned one (exclude_from), the experiment whose label issues
# it leaves out, trained and cleaned first
train_member() {
  local parent
  parent=$(get "$1" exclude_from)
  if [ -n "$parent" ]; then train_member "$parent"; clean_labels "$parent"; fi
  pretrain "$1"
  train_all_folds "$1"
}
# a task's whole pipeline from its blend config: every member trained (each once, whichever driver gets there
# first), then blend (and stack), submission, test score
run_task() {
  local exp
  prepare
  for exp in $(get "$1" members); do train_member "$exp"; done
  blend "$1"
  submit "$1"
  score "$1"
}
