"""Claims of toybench/claims/adaptive.py, selfplay.py and did.py: every verdict equals its
expectation, and the measured numbers agree with the reference's independently derived E1 values
(losses.md §2.8, §2.9, §2.12)."""
import pytest

import toybench as tb
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

# Reference values ([derived] there by BFGS on E1), with the digits the reference gives.
REFERENCE_VALUES = {
    "sppo.hard": (0.373, 5e-4),
    "sppo.small_spread_approx_e1": (0.189, 5e-4),
    "ddo.normalised_formula_other_alpha": (0.027, 5e-4),
    "ddo.self_play_beta_below_half": (0.96, 5e-3),
}


@pytest.fixture(scope="module")
def results():
    return {claim_id: tb.claims.evaluate(tb.claims.REGISTRY[claim_id]) for claim_id in EXPECTED}


def test_registered_with_expected_verdicts():
    for claim_id, expected in EXPECTED.items():
        item = tb.claims.REGISTRY[claim_id]
        assert item.expected == expected, claim_id
        assert item.citation and item.assumptions and item.statement, claim_id


def test_package_registers_the_modules():
    registered = {claim_id.split(".")[0] for claim_id in tb.claims.REGISTRY}
    assert {"beta_dpo", "madpo", "da_dpo", "sppo", "ddo", "did"} <= registered


@pytest.mark.parametrize("claim_id", sorted(EXPECTED))
def test_verdict_equals_expected(results, claim_id):
    result = results[claim_id]
    assert result.error == ""
    assert result.verdict == result.expected, (claim_id, result.measured, result.tolerance)


@pytest.mark.parametrize("claim_id", sorted(REFERENCE_VALUES))
def test_measured_matches_reference(results, claim_id):
    value, tolerance = REFERENCE_VALUES[claim_id]
    assert results[claim_id].measured == pytest.approx(value, abs=tolerance)


def test_claims_are_quick(results):
    assert max(result.seconds for result in results.values()) < 5.0   # ≲ 1 s each, slack for a loaded machine
