# Task 1 blend: the shared 4-class experiments (expected gain on task 1's rows) and a regressor on the gains.
cfg = dict(task=1, members=["t2_a", "t2_b", "t1_reg"])
