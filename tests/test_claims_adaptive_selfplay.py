"""Claims of toybench/claims/adaptive.py, selfplay.py and did.py: expected verdicts pinned (every
verdict is checked in test_claims_verdicts.py), and the measured numbers agree with the
independently derived E1 values (E1: docs/conventions.md)."""
import pytest
from conftest import assert_expected_verdicts, claim_result

import toybench.claims.adaptive  # noqa: F401  (registers the claims)
import toybench.claims.did  # noqa: F401
import toybench.claims.selfplay  # noqa: F401

EXPECTED = {
    "beta_dpo.full_batch_stationary": "holds",
    "beta_dpo.filtered_step_stationary": "fails",
    "madpo.effective_margin": "holds",
    "madpo.not_pistar": "holds",
    "da_dpo.constant_c": "holds",
    "da_dpo.varying_c_not_pistar": "holds",
    "sppo.hedge_limit": "holds",
    "sppo.ls_step_equals_hedge": "fails",
    "sppo.regularised_ne": "holds",
    "sppo.small_spread_approx": "holds",
    "sppo.small_spread_approx_e1": "fails",
    "sppo.intransitive": "holds",
    "sppo.hard": "holds",
    "ddo.alpha_beta_one": "holds",
    "ddo.normalised_formula": "holds",
    "ddo.normalised_formula_other_alpha": "fails",
    "ddo.self_play": "holds",
    "ddo.self_play_beta_below_half": "fails",
    "did.optimal_rejected_sampler": "holds",
    "did.general_rejected_sampler": "holds",
    "did.random_sampler_not_pistar": "holds",
}

# Independently derived values (BFGS on E1), with their printed digits.
REFERENCE_VALUES = {
    "sppo.hard": (0.373, 5e-4),
    "sppo.small_spread_approx_e1": (0.189, 5e-4),
    "ddo.normalised_formula_other_alpha": (0.027, 5e-4),
    "ddo.self_play_beta_below_half": (0.96, 5e-3),
}


def test_registered_with_expected_verdicts():
    assert_expected_verdicts(EXPECTED)


@pytest.mark.parametrize("claim_id", sorted(REFERENCE_VALUES))
def test_measured_matches_reference(claim_id):
    value, tolerance = REFERENCE_VALUES[claim_id]
    assert claim_result(claim_id).measured == pytest.approx(value, abs=tolerance)
