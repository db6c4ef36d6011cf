# The shared 4-class experiment: large version (every task's rows), the paper's field order. It serves task 2
# (argmax), task 1 (expected gain) and task 3 (p_S); the checkpoint is chosen by task 2's micro-F1.
cfg = dict(task=2, head="cls4")
