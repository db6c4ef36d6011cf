#!/usr/bin/env bash
# The GPU profile's whole task-2 driver at the release's size, on a CPU: bash run_task2.sh with PROFILE=gpu, the tiny
# encoder and overrides that shrink the compute but keep every row flowing (2 folds, one epoch, one validation pass,
# at most MAX_STEPS optimizer steps in pre-training and in each fold, 64 tokens), on a generated set of the release's
# size (2.6M judgements, 1.8M products), from nothing to the scored submission: prepare, pre-training (its corpora
# over the whole catalog), every fold's training, validation (the OOF) and test prediction over every row, blend,
# stack, submission, score.
#
# Usage: bash bench/release_driver.sh OUTDIR [QUERIES]
#   OUTDIR   gets data_<QUERIES>q/ (the generated set, reused when there), out/ (the run: OUTPUT_DIR) and
#            stages.tsv (one line per stage process: wall seconds, peak resident memory in GiB, the stage)
#   QUERIES  queries of the generated set (default 130457: about 2.6M judgements, as the release)
# Prints each stage's time and peak memory, the total, and the stage with the largest memory.
# Environment: PYTHON (default python), MAX_STEPS (default 200), OVERRIDES (appended to the shrinking ones).
set -euo pipefail
case "${1:-}" in
  -h|--help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
  "") sed -n '/^# Usage/,/^# Prints/p' "$0" >&2; exit 2 ;;
esac
[ -x /usr/bin/time ] || { echo "release_driver: needs GNU time at /usr/bin/time to time each stage; fix: install it (apt-get install time)" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
QUERIES=${2:-130457}
PY=${PYTHON:-python}
DATA=$OUT/data_${QUERIES}q
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}

if [ ! -f "$DATA/shopping_queries_dataset_products.parquet" ]; then
  $PY -m esci.sample --queries "$QUERIES" --out "$DATA"
fi
# every stage the driver starts goes through /usr/bin/time (wall seconds, peak RSS in KiB, the command line)
: > "$OUT/stages.raw"
cat > "$OUT/timed_python" <<EOF
#!/usr/bin/env bash
exec /usr/bin/time -a -o "$OUT/stages.raw" -f "%e	%M	%C" $PY "\$@"
EOF
chmod +x "$OUT/timed_python"
STEPS=${MAX_STEPS:-200}
started=$(date +%s)
PROFILE=gpu DATA_DIR=$DATA OUTPUT_DIR=$OUT/out PYTHON=$OUT/timed_python \
  OVERRIDES="model_dir=tiny n_folds=2 epochs=1 evals_per_epoch=1 max_steps=$STEPS pt_epochs=1 pt_max_steps=$STEPS \
max_len=64 pt_max_len=64 ${OVERRIDES:-}" \
  bash "$ROOT/run_task2.sh"
total=$(( $(date +%s) - started ))
# the stages (not the drivers' one-line config queries), named by their script and, for a fold, its fold
grep -v "esci.config" "$OUT/stages.raw" | awk -F'\t' '{
    n = split($3, a, " "); stage = ""; what = ""
    for (i = 1; i <= n; i++) {
      if (a[i] ~ /src\/0[0-9]_/) stage = a[i]
      if (a[i] ~ /^configs\// && a[i] !~ /configs\/gpu.py/) { c = a[i]; sub(/.*\//, "", c); sub(/\.py$/, "", c); what = what " " c }
      if (a[i] ~ /^fold=/) what = what " " a[i] }
    sub(/.*src\//, "", stage); printf "%s\t%.2f\t%s%s\n", $1, $2 / 1048576, stage, what }' > "$OUT/stages.tsv"
printf '%-36s %10s %14s\n' stage wall_s peak_rss_gib
awk -F'\t' '{ printf "%-36s %10.1f %14.2f\n", $3, $1, $2 }' "$OUT/stages.tsv"
awk -F'\t' -v total="$total" '{ if ($2 > max) { max = $2; at = $3 } }
  END { printf "total %d s (%.1f min); largest peak RSS %.2f GiB (%s)\n", total, total / 60, max, at }' "$OUT/stages.tsv"
