"""The ASCII shortcut of tokenization, timed: pre-training's corpora built with and without it, alternating, in one
process.

Usage: python bench/ascii_twin.py [--queries 3000] [--out output/ascii_twin] [--repeats 2]
Generates (or reuses, under --out) an ESCI-shaped set with esci.sample (real text lengths in us/es/jp), prepares it,
then builds esci.corpora's store over its whole catalog with the packaged MiniLM tokenizer at the GPU profile's
pt_max_len (256) --repeats times each way: with ASCII texts tokenized through esci.features._ascii_twin (what the
pipeline does) and with every text through the tokenizer's own backend. The two stores must hold the same arrays.
The last line is:
  ascii_twin: products=<..> ascii_rows=<share of the catalog's rows whose text is ASCII> with_s=<..> without_s=<..>
              ratio=<with / without>
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from esci import features
from esci.config import load_config
from esci.corpora import corpus_store
from esci.data import has_esci_files
from esci.features import join_fields
from esci.log import setup
from esci.model import load_tokenizer
from esci.prepare import prepare
from esci.sample import write_sample


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], usage=__doc__.split("\n\n")[1].split("\n")[0][7:])
    ap.add_argument("--queries", type=int, default=3000, help="queries of the generated set (3000: 40,780 products)")
    ap.add_argument("--out", default="output/ascii_twin")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    setup("ascii_twin")
    data, run = Path(a.out) / f"data_{a.queries}q", Path(a.out) / f"run_{a.queries}q"
    if not has_esci_files(data):
        write_sample(data, a.queries, seed=0)
    cfg = load_config("configs/gpu.py", "configs/pt.py", overrides=[f"data_dir={data}", f"output_dir={run}",
                                                                    "model_dir="])
    if not (cfg.data_root / "products.parquet").exists():
        prepare(cfg)
    tokenizer = load_tokenizer(cfg.model_dir)
    real, seconds, stores = features._ascii_twin, {"with": 0.0, "without": 0.0}, {}
    for _ in range(a.repeats):
        for way in seconds:
            features._ascii_twin = real if way == "with" else (lambda backend: None)
            shutil.rmtree(cfg.features_root, ignore_errors=True)
            t = time.perf_counter()
            store = corpus_store(cfg, tokenizer)
            seconds[way] += time.perf_counter() - t
            stores[way] = [np.array(x) for x in (store.text, store.text_off, store.query, store.query_off)]
    features._ascii_twin = real
    if any(not np.array_equal(x, y) for x, y in zip(stores["with"], stores["without"])):
        raise SystemExit("ascii_twin: the two stores differ")
    products = pq.read_table(cfg.data_root / "products.parquet")
    text = join_fields(products, ["title", "brand", "color", "bullets", "description"], " ")
    ascii_rows = pc.mean(pc.equal(pc.utf8_length(text), pc.binary_length(text)).cast("int8")).as_py()
    print(f"ascii_twin: products={len(products)} ascii_rows={ascii_rows:.3f} with_s={seconds['with']:.1f} "
          f"without_s={seconds['without']:.1f} ratio={seconds['with'] / seconds['without']:.3f}")


if __name__ == "__main__":
    main()
