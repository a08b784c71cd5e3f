import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="runs only on the PyTorch backend")
    for item in items:
        if "torch_only" in item.keywords and BACKEND != "torch":
            item.add_marker(skip)


def pytest_report_header(config):
    return f"Keras {keras.__version__}, backend {BACKEND}"


@pytest.fixture(autouse=True)
def _reset_keras_state():
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(scope="session")
def adult():
    from tabattn.data import load_adult

    return load_adult()


@pytest.fixture(scope="session")
def adult_small(adult):
    """3,000 official-train rows and 1,000 official-test rows of Adult, features and target."""
    train = adult[adult["split"] == "train"].drop(columns=["split"]).sample(3000, random_state=0)
    test = adult[adult["split"] == "test"].drop(columns=["split"]).sample(1000, random_state=0)
    return train.reset_index(drop=True), test.reset_index(drop=True)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
