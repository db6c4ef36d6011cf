# Task 1 blend: the two shared 4-class experiments of task 2 (expected gain on task 1's rows), then the stack
# (LightGBM lambdarank over them + lexical + query-group features). The regressor t1_reg (and the paper's t1_a,
# t1_b, t1_a_clean) can join through `members`; on the sample the stack without it was as good or better (3 folds:
# CV 0.9768 / test 0.9940 vs 0.9680 / 0.9884 with it; 2 folds: 0.9689 / 0.9941 vs 0.9681 / 0.9941), and leaving it
# out means run_task1.sh trains nothing that run_task2.sh did not (bench/RESULTS.md, the drivers' choices).
cfg = dict(task=1, members=["t2_a", "t2_b"], stack=True)
