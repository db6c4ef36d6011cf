# Task 3 blend: substitute probability average and a threshold, both tuned on OOF.
cfg = dict(name="blend_t3", task=3, members=["t3_a", "t3_b"])
