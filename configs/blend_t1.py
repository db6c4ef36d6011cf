# Task 1 blend: the shared 4-class experiments (expected gain on task 1's rows) and a regressor on the gains,
# then the stack (LightGBM lambdarank over them + lexical + query-group features): it beat the weighted blend by
# CV on the sample (0.9680 vs 0.9649) and tied it on the real dev set (bench/RESULTS.md, "Stacking").
cfg = dict(task=1, members=["t2_a", "t2_b", "t1_reg"], stack=True)
