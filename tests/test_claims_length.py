"""Claims of toybench/claims/length.py: expected verdicts pinned (every verdict is checked in
test_claims_verdicts.py), and the measured numbers agree with independently
derived E1 values (E1: docs/conventions.md)."""
import pytest
from conftest import assert_expected_verdicts, claim_result

import toybench.claims.length  # noqa: F401  (registers the claims)

EXPECTED = {
    "simpo.gamma0_target": "holds",
    "simpo.gamma0_independent_of_mu": "holds",
    "simpo.gamma_pair_target": "holds",
    "simpo.gamma_depends_on_mu": "holds",
    "sigmoid_norm.target": "holds",
    "sigmoid_norm.not_pistar": "holds",
    "r_dpo.target": "holds",
    "alpha_po.target": "holds",
    "orpo.not_pistar": "holds",
    "orpo.depends_on_mu": "holds",
    "cpo.not_pistar": "holds",
    "cpo.depends_on_mu": "holds",
    "asft.kkt": "holds",
    "asft.depends_on_mu": "holds",
    "asft.bounds_orpo": "holds",
    "discopop.recovers_pistar": "fails",
    "discopop.init_gradient_sign": "holds",
    "discopop.depends_on_mu": "holds",
}

# Independently derived E1 values (3 significant digits, by BFGS/LP): the measured number must match.
REFERENCE_VALUES = {
    "simpo.gamma_depends_on_mu": 0.005,
    "sigmoid_norm.not_pistar": 0.418,
    "orpo.not_pistar": 0.078,
    "cpo.not_pistar": 0.041,
    "discopop.recovers_pistar": 0.040,
    "discopop.init_gradient_sign": 0.119,
    "discopop.depends_on_mu": 0.011,
}


def test_registered_with_expected_verdicts():
    assert_expected_verdicts(EXPECTED)


@pytest.mark.parametrize("claim_id", sorted(REFERENCE_VALUES))
def test_measured_matches_reference(claim_id):
    # reference numbers are rounded to 3 digits after the point: half a unit of the last digit
    assert claim_result(claim_id).measured == pytest.approx(REFERENCE_VALUES[claim_id], abs=5e-4)
