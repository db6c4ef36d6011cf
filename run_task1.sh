#!/usr/bin/env bash
# Task 1 (query-product ranking, nDCG): prepare -> pre-train (when init_from is set) -> the members of
# configs/blend_t1.py (the shared 4-class experiments, ranked by expected gain on task 1's rows) -> blend and stack
# on OOF -> submission -> its test score (when the test split has labels).
set -euo pipefail
cd "$(dirname "$0")"
source src/stages.sh "$@"
run_task blend_t1
