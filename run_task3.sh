#!/usr/bin/env bash
# Task 3 (substitute identification, micro-F1): prepare -> pre-train (when init_from is set) -> the shared 4-class
# experiments (their p_S) and a 2-class one -> blend with an OOF-tuned threshold -> submission -> its test score
# (when the test split has labels).
# Label cleaning is off for task 3 (Table 6: -0.002).
set -euo pipefail
cd "$(dirname "$0")"
source src/stages.sh
prepare
pretrain t2_a
for exp in t2_a t2_b t3_a; do train_all_folds "$exp"; done
blend blend_t3
submit blend_t3
score blend_t3
