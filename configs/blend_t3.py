# Task 3 blend: the shared 4-class experiments' p_S and a 2-class experiment's p_sub, averaged; weights and the
# threshold tuned on OOF.
cfg = dict(task=3, members=["t2_a", "t2_b", "t3_a"])
