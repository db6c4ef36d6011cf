import re

import pandas as pd
import pytest

from esci.data import EXAMPLES, PRODUCTS, DataError, clean_text, load_esci, task_tables


def write(tmp_path, ex, pr):
    ex.to_parquet(tmp_path / EXAMPLES, index=False)
    pr.to_parquet(tmp_path / PRODUCTS, index=False)
    return tmp_path


def expect_error(tmp_path, ex, pr, *words):
    with pytest.raises(DataError) as err:
        load_esci(write(tmp_path, ex, pr))
    msg = str(err.value)
    assert "\n" not in msg and "fix:" in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_clean_text_strips_html_and_never_leaks_missing():
    s = pd.Series(["<p>Hello&amp;  <b>world</b></p><br/>x", None, float("nan"), "  a \n b  ", "None"])
    assert clean_text(s).tolist() == ["Hello& world x", "", "", "a b", "None"]


def test_loaded_sample_has_clean_text(esci):
    examples, products = esci
    for col in ("product_title", "product_description", "product_bullet_point", "product_brand", "product_color"):
        assert products[col].map(type).eq(str).all()
        assert not products[col].str.contains(r"<[a-z/]|&amp;|^nan$|^None$", regex=True).any()
    assert products.product_description.eq("").any()


def test_task_tables_filter_versions_and_merge(esci):
    examples, products = esci
    t1_train, t1_test = task_tables(examples, products, 1)
    t2_train, t2_test = task_tables(examples, products, 2)
    assert len(t1_train) + len(t1_test) == int(examples.small_version.sum())
    assert len(t2_train) + len(t2_test) == int(examples.large_version.sum())
    assert "esci_label" not in t2_test.columns and t2_train.esci_label.isin(list("ESCI")).all()
    assert t2_train.title.ne("").all() and (t2_train.weight == 1.0).all()
    # text comes from the product of the row's own locale
    row = t2_train.iloc[0]
    p = products[(products.product_id == row.product_id) & (products.product_locale == row.product_locale)]
    assert p.product_title.iat[0] == row.title


def test_add_task1_rows_weights_extra_rows(esci):
    examples, products = esci
    ex = examples.copy()
    drop = ex.split.eq("train") & ex.small_version.eq(1)
    ex.loc[drop[drop].index[:10], "large_version"] = 0
    base, _ = task_tables(ex, products, 2)
    aug, _ = task_tables(ex, products, 2, add_task1_rows=True, aug_weight=0.3)
    assert len(aug) == len(base) + 10
    assert (aug.weight == 0.3).sum() == 10


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=re.escape(EXAMPLES) + ".*not found.*fix"):
        load_esci(tmp_path)


def test_empty_file(tmp_path, raw):
    ex, pr = raw
    write(tmp_path, ex, pr)
    (tmp_path / EXAMPLES).write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_esci(tmp_path)


def test_zero_row_file(tmp_path, raw):
    ex, pr = raw
    expect_error(tmp_path, ex.iloc[:0], pr, "no rows")


def test_missing_column(tmp_path, raw):
    ex, pr = raw
    expect_error(tmp_path, ex.drop(columns=["query_id"]), pr, EXAMPLES, "'query_id'", "missing")


def test_unknown_label(tmp_path, raw):
    ex, pr = raw
    ex.loc[3, "esci_label"] = "X"
    expect_error(tmp_path, ex, pr, "'esci_label'", "'X'", "row 3")


def test_duplicate_example_id(tmp_path, raw):
    ex, pr = raw
    ex.loc[5, "example_id"] = ex.loc[4, "example_id"]
    expect_error(tmp_path, ex, pr, "'example_id'", "row 5")


def test_product_not_in_catalog(tmp_path, raw):
    ex, pr = raw
    pr = pr[~((pr.product_id == ex.product_id[7]) & (pr.product_locale == ex.product_locale[7]))]
    expect_error(tmp_path, ex, pr, "missing from", PRODUCTS, str(ex.example_id[7]))


def test_empty_query(tmp_path, raw):
    ex, pr = raw
    ex.loc[2, "query"] = "  "
    expect_error(tmp_path, ex, pr, "'query'", "row 2")


def test_wrong_dtype(tmp_path, raw):
    ex, pr = raw
    ex["query_id"] = ex.query_id.astype(str)
    expect_error(tmp_path, ex, pr, "'query_id'", "expected integers")


def test_duplicate_product_row(tmp_path, raw):
    ex, pr = raw
    expect_error(tmp_path, ex, pd.concat([pr, pr.iloc[[0]]]), PRODUCTS, "repeats")


def test_same_asin_in_two_locales_joins_by_locale(esci):
    examples, products = esci
    shared = products[products.product_id.duplicated(keep=False)]
    assert len(shared), "the sample reuses ASINs across locales"
    train, test = task_tables(examples, products, 2)
    both = pd.concat([train, test])
    merged = both.merge(products, on=["product_locale", "product_id"])
    assert (merged.title == merged.product_title).all()
