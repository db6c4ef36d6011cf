#!/usr/bin/env bash
# Task 2 (E/S/C/I classification, micro-F1): prepare -> pre-train (when init_from is set) -> the members of
# configs/blend_t2.py (t2_a, t2_b: 4-class, large version, two field orders) -> blend and stack on OOF ->
# submission -> its test score (when the test split has labels).
# run_task1.sh and run_task3.sh blend the same two experiments, so whichever driver runs first trains them once.
# Label cleaning is off for task 2 (paper Table 6: -0.003); a member with exclude_from (like t1_a_clean)
# is trained after its parent and the parent's label cleaning.
set -euo pipefail
cd "$(dirname "$0")"
source src/stages.sh "$@"
run_task blend_t2
