# t1_a retrained without the label issues that confident learning found in t1_a's OOF (paper Table 6: helps task 1).
parent = "t1_a"
cfg = dict(exclude_from="t1_a")
