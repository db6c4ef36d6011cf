# Peer: the official baseline's method in this loop: a plain cross-encoder on task 1's rows, one logit trained
# with binary cross-entropy on the gains (E 1, S 0.1, C 0.01, I 0); no semantic units, IDs, EMA or other tricks.
cfg = dict(task=1, head="reg", loss="bce", rows="small", use_units=False, use_ids=False, ema=False, fgm=False,
           rdrop=False, mixup=False)
