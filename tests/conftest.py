"""Shared fixtures. Where pytest-xdist is installed the tests run in two workers (a test file stays on one worker:
module fixtures), each of which, with the processes it starts, uses one torch thread: two workers on two cores, each
with torch's default threads, spin against each other many times slower. Without xdist they run in one process."""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

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


def pytest_collection_modifyitems(items):
    """The driver runs (the longest file) first, so that one worker starts them while the other takes the rest."""
    items.sort(key=lambda item: not item.nodeid.startswith("tests/test_pipeline.py"))


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """`-n 2 --dist loadfile` unless -n was given, xdist is missing or disabled, or this is a worker (pyproject's
    addopts cannot name an option of a plugin that may not be installed)."""
    if (config.pluginmanager.hasplugin("xdist") and config.getoption("numprocesses", None) is None
            and not os.environ.get("PYTEST_XDIST_WORKER") and not config.getoption("collectonly")):
        config.option.numprocesses, config.option.dist = 2, "loadfile"
