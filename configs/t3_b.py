# Task 3, 2-class head, brand and color first.
cfg = dict(task=3, head="cls2", fields=["brand", "color", "title", "bullets", "description"])
