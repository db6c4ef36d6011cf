# Task 1 classifier: 4-class head ranked by expected gain, the paper's field order.
cfg = dict(name="t1_a", task=1, head="cls4")
