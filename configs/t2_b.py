# Task 2, 4-class head, brand and color first (field order is an ensemble-diversity knob).
cfg = dict(name="t2_b", task=2, head="cls4", fields=["brand", "color", "title", "bullets", "description"])
