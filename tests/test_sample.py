"""The sample generator: the release's schema, loadable files, determinism, atomic writes, label semantics, and
realistic sizes, lengths and gaps (checked at 3,000 queries; the same generator makes the release-sized set)."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from esci.data import EXAMPLES, PRODUCTS, SOURCES, load_esci
from esci.sample import LOCALES, NOISE_FILE, _Sample, generate, write_sample

EXAMPLE_SCHEMA = [("example_id", "int64"), ("query", "string"), ("query_id", "int64"), ("product_id", "string"),
                  ("product_locale", "string"), ("esci_label", "string"), ("small_version", "int64"),
                  ("large_version", "int64"), ("split", "string")]
PRODUCT_SCHEMA = [(c, "string") for c in ("product_id", "product_title", "product_description",
                                          "product_bullet_point", "product_brand", "product_color",
                                          "product_locale")]
FILES = {EXAMPLES, PRODUCTS, SOURCES, NOISE_FILE}


@pytest.fixture(scope="module")
def small():
    return generate(300, seed=0)


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    d = tmp_path_factory.mktemp("medium")
    info = write_sample(d, 3000, seed=1)
    return info, pd.read_parquet(d / EXAMPLES), pd.read_parquet(d / PRODUCTS), pd.read_csv(d / NOISE_FILE)


def test_sample_shape_and_labels(small):
    ex, pr, src, noise = small
    assert 3000 <= len(ex) <= 4500 and ex.query_id.nunique() == 300  # about today's embedded sample
    share = ex.esci_label.value_counts(normalize=True)
    assert set(share.index) == set("ESCI")
    assert 0.5 < share.E < 0.75 and 0.12 < share.S < 0.32 and 0.01 < share.C < 0.08 and 0.05 < share.I < 0.2
    sizes = ex.groupby("query_id").size()
    assert sizes.min() >= 5 and sizes.max() <= 60
    assert set(ex.product_locale) == set(pr.product_locale) == {"us", "es", "jp"}
    jp = pr[pr.product_locale == "jp"].product_title
    assert jp.str.contains(r"[\u3040-\u30ff\u4e00-\u9fff]").mean() > 0.9
    assert pr.product_description.str.contains("<p>", na=False).any()
    assert pr.product_description.str.contains("&amp;|&quot;", na=False).any()
    for col in ("product_brand", "product_color", "product_description", "product_bullet_point"):
        assert 0.02 < pr[col].isna().mean() < 0.6, col
    assert pr.product_title.notna().all() and pr.product_id.str.fullmatch(r"B0[0-9A-Z]{8}").all()
    assert 3 <= pr[pr.product_locale == "us"].product_brand.nunique() <= 12  # a handful of brands, as before
    for split in ("train", "test"):
        for v in ("small_version", "large_version"):
            assert (ex[(ex.split == split)][v] == 1).any()
    assert (ex.large_version == 1).all() and 0.35 < ex.drop_duplicates("query_id").small_version.mean() < 0.65
    assert set(src.query_id) == set(ex.query_id) and src.source.notna().all()


def test_flipped_labels_are_recorded(small, medium):
    for ex, noise, lo, hi in ((small[0], small[3], 0.04, 0.06), (medium[1], medium[3], 0.048, 0.052)):
        assert lo < len(noise) / ex.split.eq("train").sum() < hi
        assert (noise.true_label != noise.given_label).all() and noise.example_id.is_unique
        assert set(noise.true_label) == set(noise.given_label) == set("ESCI")
        got = ex.set_index("example_id").loc[noise.example_id]
        assert (got.esci_label.to_numpy() == noise.given_label.to_numpy()).all() and got.split.eq("train").all()


def test_labels_follow_the_query_product_relation():
    s = _Sample(400, seed=2, noise=0.05)
    label = s.ex_label.copy()
    label[s.flip] = s.true_label  # before the flips
    prod = s.p_index[s.ex_prod]
    q = {k: v[s.ex_q] for k, v in s.q.items()}
    typ, brand, color = s.typ[prod], s.brand[prod], s.color[prod]
    same_type = typ == q["typ"]
    attr_ok = np.select([q["cons"] == 1, q["cons"] == 2], [brand == q["brand"], color == q["color"]], True)
    family = (typ // 3) == (q["typ"] // 3)
    sibling = family & (typ % 3 == 1 - q["kind"])
    accessory = family & (typ % 3 == 2)
    assert (s.loc[prod] == q["loc"]).all()
    assert (same_type & attr_ok)[label == 0].all()
    assert (sibling | (same_type & ~attr_ok))[label == 1].all()
    assert accessory[label == 2].all()
    assert (~family)[label == 3].all()
    # every relation class is exercised: named brands, named colors, and S rows of the queried type
    assert {0, 1, 2} <= set(q["cons"][label == 0]) and (same_type & (label == 1)).any()
    # a query judges a product once
    assert not pd.DataFrame({"q": s.ex_q, "p": s.ex_prod}).duplicated().any()


def test_files_have_the_release_schema_and_load(tmp_path):
    info = write_sample(tmp_path, 300, seed=0)
    assert {p.name for p in tmp_path.iterdir()} == FILES  # no temporary files left
    for name, schema in ((EXAMPLES, EXAMPLE_SCHEMA), (PRODUCTS, PRODUCT_SCHEMA)):
        got = pq.read_schema(tmp_path / name)
        assert [(f.name, str(f.type)) for f in got] == schema, name
    assert list(pd.read_csv(tmp_path / SOURCES).columns) == ["query_id", "source"]
    assert list(pd.read_csv(tmp_path / NOISE_FILE).columns) == ["example_id", "true_label", "given_label"]
    examples, products = load_esci(tmp_path)
    assert len(examples) == info["examples"] and len(products) == info["products"]
    assert examples.query_id.nunique() == info["queries"] == 300
    assert examples.source.notna().all()
    assert not products.product_description.str.contains(r"<[a-z/]|&amp;|&quot;|&#", regex=True).any()
    assert abs(sum(info["labels"].values()) - 1) < 0.01 and info["flipped"] > 0
    ex, pr, _, noise = generate(300, seed=0)  # the in-memory frames are what is written
    assert ex.equals(pd.read_parquet(tmp_path / EXAMPLES)) and pr.equals(pd.read_parquet(tmp_path / PRODUCTS))
    assert noise.equals(pd.read_csv(tmp_path / NOISE_FILE))


def test_sample_is_deterministic(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_sample(a, 60, seed=3)
    write_sample(b, 60, seed=3)
    write_sample(c, 60, seed=4)
    assert {p.name for p in a.iterdir()} == FILES
    for f in sorted(p.name for p in a.iterdir()):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    for f in (EXAMPLES, PRODUCTS):
        assert (a / f).read_bytes() != (c / f).read_bytes(), f
    assert not generate(60, seed=4)[0].equals(pd.read_parquet(a / EXAMPLES))


def test_queries_are_unique_and_consistent(medium):
    _, ex, _, _ = medium
    per_query = ex.groupby("query_id").agg(text=("query", "nunique"), loc=("product_locale", "nunique"),
                                           small=("small_version", "nunique"), split=("split", "nunique"))
    assert (per_query == 1).all().all()
    queries = ex.drop_duplicates("query_id")
    assert queries["query"].is_unique and not queries.duplicated(["product_locale", "query"]).any()
    assert 0.65 < queries.split.eq("train").mean() < 0.75 and 0.45 < queries.small_version.mean() < 0.55
    share = queries.product_locale.value_counts(normalize=True)
    assert abs(share.us - 0.5) < 0.03 and abs(share.es - 0.25) < 0.03 and abs(share.jp - 0.25) < 0.03
    assert not ex.duplicated(["query_id", "product_id"]).any() and ex.example_id.is_unique


def test_release_like_sizes_lengths_and_gaps(medium):
    info, ex, pr, _ = medium
    assert info["examples"] == len(ex) and info["products"] == len(pr) and info["queries"] == 3000
    assert 0.6 < len(pr) / len(ex) < 0.8  # about 0.7 products per judgement
    sizes = ex.groupby("query_id").size()
    assert sizes.min() >= 5 and 17 < sizes.mean() < 23
    share = ex.esci_label.value_counts(normalize=True)
    assert 0.58 < share.E < 0.7 and 0.18 < share.S < 0.27 and 0.02 < share.C < 0.05 and 0.07 < share.I < 0.13
    us = pr[pr.product_locale == "us"]
    title, bullets, desc = (us[c].str.len() for c in ("product_title", "product_bullet_point",
                                                      "product_description"))
    assert 115 < title.mean() < 145 and title.min() >= 20 and title.max() <= 300
    assert 720 < bullets.mean() < 920 and 680 < desc.mean() < 920
    assert desc.std() / desc.mean() > 0.4 and bullets.std() / bullets.mean() > 0.3  # spread, not a constant
    assert us.product_bullet_point.str.contains("\n", na=False).mean() > 0.6
    html_share = us.product_description.str.contains("<", na=False).sum() / us.product_description.notna().sum()
    assert 0.25 < html_share < 0.6
    for col, want in (("product_description", 0.45), ("product_bullet_point", 0.15), ("product_brand", 0.05),
                      ("product_color", 0.35)):
        assert abs(pr[col].isna().mean() - want) < 0.02, col
    # titles show type (via the query's E rows), brand and color; the brand vocabulary grows with the catalog
    has = us.dropna(subset=["product_brand", "product_color"])
    assert all(b in t and c in t for t, b, c in zip(has.product_title, has.product_brand, has.product_color))
    assert us.product_brand.nunique() > 100
    # ids: unique within a locale, some es products reuse a us product's id
    assert not pr.duplicated(["product_locale", "product_id"]).any()
    es_ids, us_ids = set(pr[pr.product_locale == "es"].product_id), set(us.product_id)
    assert 0.03 < len(es_ids & us_ids) / len(es_ids) < 0.07
    assert not set(pr[pr.product_locale == "jp"].product_id) & us_ids
    # every product is judged at least once (the catalog holds the judged products only)
    assert set(zip(pr.product_locale, pr.product_id)) == set(zip(ex.product_locale, ex.product_id))


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken(self):
        yield next(iter(original(self)))
        raise RuntimeError("disk full")
    original = _Sample.example_tables
    monkeypatch.setattr(_Sample, "example_tables", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_sample(tmp_path, 60, seed=0)
    assert {p.name for p in tmp_path.iterdir()} == FILES - {EXAMPLES}  # products came first; no temp file


def test_command_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "esci.sample", "--queries", "50", "--out", str(tmp_path),
                          "--seed", "7", "--noise", "0.1"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1 and "50 queries" in lines[0] and " s" in lines[0]
    assert {p.name for p in tmp_path.iterdir()} == FILES
    write_sample(tmp_path / "api", 50, seed=7, noise=0.1)
    for f in FILES:
        assert (tmp_path / f).read_bytes() == (tmp_path / "api" / f).read_bytes(), f
    assert LOCALES == ("us", "es", "jp")
