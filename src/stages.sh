# Shared by run_task{1,2,3}.sh: the stage commands, each skipped by the stage itself when its outputs are complete.
# Environment: PROFILE (sample | full), DATA_DIR, MODEL_DIR, OUTPUT_DIR, PYTHON, LAUNCH ("accelerate launch ..."
# to spread training over several GPUs or nodes).
PROFILE=${PROFILE:-sample}
PYTHON=${PYTHON:-python}
LAUNCH=${LAUNCH:-$PYTHON}
P=configs/$PROFILE.py
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
[ -f "$P" ] || { echo "PROFILE=$PROFILE: no $P; fix: use sample or full" >&2; exit 2; }

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
