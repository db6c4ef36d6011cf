import pandas as pd

from esci.sample import NOISE_FILE, generate, write_sample


def test_sample_shape_and_labels():
    ex, pr, src, noise = generate(300, seed=0)
    share = ex.esci_label.value_counts(normalize=True)
    assert set(share.index) == set("ESCI")
    assert 0.5 < share.E < 0.75 and 0.12 < share.S < 0.32 and 0.01 < share.C < 0.08 and 0.05 < share.I < 0.2
    sizes = ex.groupby("query_id").size()
    assert sizes.min() >= 5 and sizes.max() <= 60
    assert set(ex.product_locale) == {"us", "es", "jp"}
    jp = pr[pr.product_locale == "jp"].product_title
    assert jp.str.contains(r"[\u3040-\u30ff\u4e00-\u9fff]").mean() > 0.9
    assert pr.product_description.str.contains("<p>", na=False).any()
    for col in ("product_brand", "product_color", "product_description"):
        assert 0.05 < pr[col].isna().mean() < 0.6
    for split in ("train", "test"):
        for v in ("small_version", "large_version"):
            assert (ex[(ex.split == split)][v] == 1).any()
    # flipped labels are recorded and only touch training rows
    assert 0.04 < len(noise) / ex.split.eq("train").sum() < 0.06
    assert (noise.true_label != noise.given_label).all()
    got = ex.set_index("example_id").loc[noise.example_id]
    assert (got.esci_label.to_numpy() == noise.given_label.to_numpy()).all() and got.split.eq("train").all()


def test_sample_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_sample(a, 60, seed=3)
    write_sample(b, 60, seed=3)
    for f in sorted(p.name for p in a.iterdir()):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert not generate(60, seed=4)[0].equals(pd.read_parquet(a / "shopping_queries_dataset_examples.parquet"))
    assert (a / NOISE_FILE).exists()
