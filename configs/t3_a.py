# Task 3: 2-class head, substitute vs not.
cfg = dict(name="t3_a", task=3, head="cls2")
