# Task 3 blend: the shared 4-class experiments' p_S and a 2-class experiment's p_sub, averaged, then the stack
# (LightGBM binary over them + lexical + query-group features, threshold tuned on its OOF): CV +0.070 on the
# sample, +0.005 on the real dev set (bench/RESULTS.md, "Stacking").
cfg = dict(task=3, members=["t2_a", "t2_b", "t3_a"], stack=True)
