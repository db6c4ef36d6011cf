# The second shared 4-class experiment: brand and color first (field order is an ensemble-diversity knob).
cfg = dict(task=2, head="cls4", fields=["brand", "color", "title", "bullets", "description"])
