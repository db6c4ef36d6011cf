# Task 1 regressor: one unit, MSE on the gains (E 1, S 0.1, C 0.01, I 0), trained on the large version.
cfg = dict(task=1, head="reg", aug_weight=1.0)
