#!/usr/bin/env bash
# Task 3 (substitute identification, micro-F1): prepare -> pre-train (when init_from is set) -> the
# members of configs/blend_t3.py (the shared 4-class experiments' p_S) -> blend and stack with an OOF-tuned threshold
# -> submission -> its test score (when the test split has labels).
# Label cleaning is off for task 3 (Table 6: -0.002).
set -euo pipefail
cd "$(dirname "$0")"
source src/stages.sh "$@"
run_task blend_t3
