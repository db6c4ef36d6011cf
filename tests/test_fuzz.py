"""Mangled input, many ways at once: every mutation of the sample's two files ends in prepared tables that keep every
example (and nothing else), or in one line naming the file and the fix (EsciError; the stage prints it and exits 2).
Never another exception, never an example silently dropped."""
import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from esci import EsciError
from esci.config import load_config
from esci.data import EXAMPLES, PRODUCTS
from esci.prepare import load_examples, prepare


def _null(df, rng, col):
    df = df.copy()
    df[col] = df[col].astype(object)
    df.loc[df.index[rng.sample(range(len(df)), max(1, len(df) // 20))], col] = None
    return df


def _cell(df, rng, col, value):
    df = df.copy()
    df[col] = df[col].astype(str if isinstance(value, str) else object)  # parquet holds one type per column
    df.loc[df.index[rng.randrange(len(df))], col] = value
    return df


# each: (name, function of (examples, products, rng) -> (examples, products); None as a frame means an empty file
MUTATIONS = [
    ("drop a column", lambda e, p, r: (e.drop(columns=r.choice(list(e.columns))), p)),
    ("drop a product column", lambda e, p, r: (e, p.drop(columns=r.choice(list(p.columns))))),
    ("rename a column", lambda e, p, r: (e.rename(columns={r.choice(list(e.columns)): "renamed"}), p)),
    ("nulls in a column", lambda e, p, r: (_null(e, r, r.choice(list(e.columns))), p)),
    ("nulls in a product column", lambda e, p, r: (e, _null(p, r, r.choice(list(p.columns))))),
    ("ids as strings", lambda e, p, r: (e.assign(**{r.choice(["example_id", "query_id"]): lambda d: d[
        r.choice(["example_id", "query_id"])].astype(str)}), p)),
    ("ids as floats", lambda e, p, r: (e.assign(query_id=e.query_id.astype(float)), p)),
    ("a text id", lambda e, p, r: (_cell(e, r, "query_id", "q-17"), p)),
    ("duplicate example ids", lambda e, p, r: (pd.concat([e, e.sample(3, random_state=r.randrange(99))]), p)),
    ("an unknown locale", lambda e, p, r: (_cell(e, r, "product_locale", "fr"), p)),
    ("an unknown label", lambda e, p, r: (_cell(e, r, "esci_label", r.choice(["X", "e", "exact", ""])), p)),
    ("an unknown split", lambda e, p, r: (_cell(e, r, "split", "dev"), p)),
    ("an empty examples file", lambda e, p, r: (None, p)),
    ("an empty products file", lambda e, p, r: (e, None)),
    ("no rows", lambda e, p, r: (e.iloc[:0], p)),
    ("enormous texts", lambda e, p, r: (e, _cell(p, r, r.choice(["product_title", "product_description"]),
                                                  "long " * 200_000))),
    ("an enormous query", lambda e, p, r: (_cell(e, r, "query", "q " * 50_000), p)),
    ("products missing rows", lambda e, p, r: (e, p.drop(p.index[r.sample(range(len(p)), 3)]))),
    ("a product twice", lambda e, p, r: (e, pd.concat([p, p.iloc[[r.randrange(len(p))]]]))),
    ("extra columns", lambda e, p, r: (e.assign(extra=1), p.assign(note="x"))),
    ("shuffled rows", lambda e, p, r: (e.sample(frac=1, random_state=r.randrange(99)), p.sample(frac=1))),
    ("control characters", lambda e, p, r: (e, _cell(p, r, "product_title", "a\x00b\x1b[31mc\u200b"))),
    ("versions as text", lambda e, p, r: (e.assign(small_version=e.small_version.astype(str)), p)),
    ("a version of 2", lambda e, p, r: (_cell(e, r, "large_version", 2), p)),
]
UNUSABLE_TEXT = b"\xff\xfe not utf-8 \xc3\x28"


def write(folder, ex, pr, bad_bytes: bool):
    for frame, name in ((ex, EXAMPLES), (pr, PRODUCTS)):
        if frame is None:
            (folder / name).write_bytes(b"")
        elif bad_bytes and name == PRODUCTS:  # a text column holding bytes that are not UTF-8
            table = pa.Table.from_pandas(frame, preserve_index=False)
            i = table.schema.get_field_index("product_title")
            if i >= 0:
                col = table.column(i).to_pylist()
                col[0] = UNUSABLE_TEXT
                table = table.set_column(i, "product_title", pa.array(
                    [c.encode() if isinstance(c, str) else c for c in col], pa.binary())).replace_schema_metadata()
            pq.write_table(table, folder / name)
        else:
            frame.to_parquet(folder / name, index=False)


@pytest.mark.parametrize("seed", range(48))
def test_mangled_input_prepares_every_example_or_fails_in_one_line(tmp_path, raw, seed):
    rng = random.Random(seed)
    ex, pr = raw
    ex = ex[ex.query_id.isin(ex.query_id.drop_duplicates().sample(40, random_state=seed))].reset_index(drop=True)
    pr = pr.merge(ex[["product_id", "product_locale"]].drop_duplicates())
    picked = rng.sample(MUTATIONS, rng.choice([1, 1, 2, 3]))
    for _, mutate in picked:
        if ex is not None and pr is not None and len(ex) and len(pr):
            ex, pr = mutate(ex, pr, rng)
    data = tmp_path / "data"
    data.mkdir()
    write(data, ex, pr, bad_bytes=rng.random() < 0.25)
    cfg = load_config("configs/cpu.py", overrides=[f"output_dir={tmp_path / 'out'}", f"data_dir={data}"])
    what = [name for name, _ in picked]
    try:
        prepare(cfg)
    except EsciError as e:
        msg = str(e)
        assert "\n" not in msg and "fix" in msg and (EXAMPLES in msg or PRODUCTS in msg or str(data) in msg), \
            (what, msg)
        assert not (cfg.data_root / "examples.parquet").exists(), what
        return
    prepared = load_examples(cfg)
    assert sorted(prepared.example_id) == sorted(np.asarray(ex.example_id).astype(np.int64)), what
