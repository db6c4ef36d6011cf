import pandas as pd
import pytest

from esci.data import EXAMPLES, PRODUCTS, load_esci
from esci.sample import write_sample


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("esci_sample")
    write_sample(d, n_queries=150, seed=0)
    return d


@pytest.fixture(scope="session")
def esci(sample_dir):
    return load_esci(sample_dir)


@pytest.fixture
def raw(sample_dir):
    """Fresh copies of the raw sample frames, to corrupt in a test."""
    return pd.read_parquet(sample_dir / EXAMPLES), pd.read_parquet(sample_dir / PRODUCTS)
