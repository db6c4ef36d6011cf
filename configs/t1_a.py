# Task 1 classifier: 4-class head ranked by expected gain, the paper's field order. It also trains on the large
# version's training rows outside task 1 (never validated or scored: OOF and CV stay on task-1 rows).
cfg = dict(name="t1_a", task=1, head="cls4", add_large_rows=True, aug_weight=1.0)
