# Task 3, 2-class head, brand and color first.
cfg = dict(name="t3_b", task=3, head="cls2", fields=["brand", "color", "title", "bullets", "description"])
