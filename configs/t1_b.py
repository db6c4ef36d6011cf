# Task 1 classifier, brand and color first.
cfg = dict(task=1, head="cls4", aug_weight=1.0,
           fields=["brand", "color", "title", "bullets", "description"])
