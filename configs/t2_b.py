# The second shared 4-class experiment: brand and color first (field order is an ensemble-diversity knob) and its
# own training seed, so that it differs from t2_a where a catalog has no brand or color (on the real dev set, titles
# only, it was t2_a to the last digit without it).
cfg = dict(task=2, head="cls4", fields=["brand", "color", "title", "bullets", "description"], train_seed=2022)
