# Task 3: 2-class head, substitute vs not.
cfg = dict(task=3, head="cls2")
