# Task 2 blend: probability average of two field orders.
cfg = dict(task=2, members=["t2_a", "t2_b"])
