# The shared 4-class experiment t2_a retrained without the label issues that confident learning found in its OOF
# (what bench/table6_cleaning.py trains): +0.008 to +0.021 on every task of the sample (5% flipped labels), level
# on the real dev set (bench/RESULTS.md, "What does confident learning buy?"). A driver trains t2_a and cleans it first:
# OVERRIDES="members=['t2_a_clean','t2_b']" bash run_task2.sh
parent = "t2_a"
cfg = dict(exclude_from="t2_a")
