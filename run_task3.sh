#!/usr/bin/env bash
# Task 3 (substitute identification, micro-F1): prepare -> pre-train (when init_from is set) -> folds of two field
# orders -> blend with an OOF-tuned threshold -> submission. Label cleaning is off for task 3 (Table 6: -0.002).
set -euo pipefail
cd "$(dirname "$0")"
source src/stages.sh
prepare t3_a
pretrain t3_a
for exp in t3_a t3_b; do train_all_folds "$exp"; done
blend blend_t3
submit blend_t3
