#!/usr/bin/env bash
# Task 1 (query-product ranking, nDCG): prepare -> pre-train (when init_from is set) -> the shared 4-class
# experiments (ranked by expected gain on task 1's rows) and a regressor -> blend on OOF -> submission -> its
# test score (when the test split has labels).
set -euo pipefail
cd "$(dirname "$0")"
source src/stages.sh
prepare
pretrain t2_a
for exp in t2_a t2_b t1_reg; do train_all_folds "$exp"; done
blend blend_t1
submit blend_t1
score blend_t1
