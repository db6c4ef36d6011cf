# Task 2, 4-class head, the paper's field order.
cfg = dict(name="t2_a", task=2, head="cls4")
