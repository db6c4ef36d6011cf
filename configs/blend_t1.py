# Task 1 blend: two classifier field orders (one retrained after label cleaning) and a regressor.
cfg = dict(name="blend_t1", task=1, members=["t1_a_clean", "t1_b", "t1_reg"])
