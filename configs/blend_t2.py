# Task 2 blend: probability average of two field orders, then the stack (LightGBM multiclass over them + lexical +
# query-group features): CV +0.094 on the sample, +0.009 on the real dev set (bench/RESULTS.md, the drivers' choices).
cfg = dict(task=2, members=["t2_a", "t2_b"], stack=True)
