# Task 1 classifier (the paper's): 4-class head ranked by expected gain, checkpoint chosen by task 1's nDCG. It trains
# on the large version (rows outside task 1 at aug_weight; only task 1's rows are scored); rows="small" trains on
# task 1's rows only, as the paper did.
cfg = dict(task=1, head="cls4", aug_weight=1.0)
