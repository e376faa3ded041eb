"""API papercuts at the public boundary: a Problem from probabilities, a hint when probabilities
are passed as log-probabilities, and regularisation strengths outside the meaningful range."""
import math

import numpy as np
import pytest
import torch

import toybench as tb

SPACE = tb.FlatSpace(4)
PROBS = [[0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]]
REWARD = torch.tensor([[0.0, 0.5, 1.5, 3.0], [1.0, 0.0, 0.0, -1.0]])


def test_problem_from_probabilities_stores_their_log():
    expected = np.log(np.array(PROBS))
    for prob in (tb.Problem(SPACE, ref_probs=torch.tensor(PROBS, dtype=torch.float64), reward=REWARD),
                 tb.Problem.from_probs(SPACE, PROBS, reward=REWARD, pair_dist="uniform")):
        assert prob.ref_logp.dtype == torch.float64
        np.testing.assert_allclose(prob.ref_logp.numpy(), expected, rtol=0, atol=1e-15)
    replaced = tb.Problem.from_probs(SPACE, PROBS, reward=REWARD).replace(pair_dist="uniform")
    np.testing.assert_allclose(replaced.ref_logp.numpy(), expected, rtol=0, atol=1e-15)


def test_probabilities_passed_as_log_probabilities_get_a_hint():
    with pytest.raises(ValueError, match="look like probabilities: pass ref_probs= or take .log()"):
        tb.Problem(SPACE, ref_logp=torch.tensor(PROBS), reward=REWARD)
    with pytest.raises(ValueError) as err:  # unnormalised log-probs: no probability hint
        tb.Problem(SPACE, ref_logp=torch.zeros(2, 4), reward=REWARD)
    assert "probabilities" not in str(err.value)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of ref_logp= .* or ref_probs="),
    ({"ref_logp": torch.tensor(PROBS).log(), "ref_probs": PROBS}, "exactly one of"),
    ({"ref_probs": [[0.5, 0.5, 0.0, 0.0]] * 2}, "full support"),
    ({"ref_probs": [[0.5, 0.5, 0.5, 0.5]] * 2}, "sum to one"),
    ({"ref_probs": [[math.nan, 0.5, 0.25, 0.25]] * 2}, "finite and positive"),
])
def test_bad_probabilities_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tb.Problem(SPACE, reward=REWARD, **kwargs)


@pytest.mark.parametrize("beta", [1e-300, 1e-9, 1e9, 1e300, math.nan, math.inf, -1.0])
@pytest.mark.parametrize("name", ["dpo", "ipo", "cdpo", "simpo", "bpo"])
def test_meaningless_beta_is_rejected_with_the_range(name, beta):
    with pytest.raises(ValueError, match=r"beta") as err:
        tb.losses.make(name, beta=beta)
    if math.isfinite(beta) and beta > 0:
        assert "1e-08 <= beta <= 1e+08" in str(err.value)


def test_range_applies_per_run_and_to_oracles():
    with pytest.raises(ValueError, match="1e-08 <= beta"):
        tb.losses.make("dpo", beta=torch.tensor([0.1, 1e-12], dtype=torch.float64))
    prob = tb.Problem.random(SPACE, seed=0)
    with pytest.raises(ValueError, match="1e-08 <= beta"):
        tb.optima.reverse_kl(prob, 1e-300)
    with pytest.raises(ValueError, match="1e-08 <= beta_plus"):
        tb.losses.make("flex_dpo", beta_plus=1e300)


def test_range_ends_are_accepted():
    for beta in (1e-8, 1e8):
        assert tb.losses.make("dpo", beta=beta).beta == beta
