#!/usr/bin/env bash
# Task 1 (query-product ranking, nDCG): prepare -> pre-train (when init_from is set) -> folds of two classifier
# field orders and a regressor -> confident learning on t1_a -> retrain t1_a_clean -> blend on OOF -> submission.
set -euo pipefail
cd "$(dirname "$0")"
source src/stages.sh
prepare t1_a
pretrain t1_a
for exp in t1_a t1_b t1_reg; do train_all_folds "$exp"; done
clean_labels t1_a
train_all_folds t1_a_clean
blend blend_t1
submit blend_t1
