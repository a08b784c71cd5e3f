"""scikit-learn's estimator checks on both estimators (small models), on one backend."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from tabattn import TabularClassifier, TabularRegressor

SMALL = dict(model="tabm", model_params={"k": 4, "d_block": 16, "n_blocks": 1}, epochs=5,
             verbose=0, random_state=0)

EXPECTED_FAILURES = {
    # A weight of 2 is not the same as a repeated row for a network trained by minibatches:
    # the repeated row lands in other batches and in the validation split.
    "check_sample_weight_equivalence_on_dense_data": (
        "minibatch training: a weight of 2 does not equal a repeated row"
    ),
}


@pytest.mark.torch_only  # the checks fit about 60 models: the backend without compilation
@parametrize_with_checks(
    [TabularClassifier(**SMALL), TabularRegressor(**SMALL)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
