import numpy as np
import pytest
import torch
from conftest import E1_REF, E1_REWARD, e1_problem

import toybench as tb


def sigmoid(t):
    return 1 / (1 + np.exp(-t))


def numpy_population_table(noise, law="uniform"):
    """D(a, b) by hand for E1: w_ab·p̃_ab with w from the pair law."""
    if law == "uniform":
        mu = np.ones((4, 4))
    else:
        mu = np.outer(E1_REF, E1_REF)
    np.fill_diagonal(mu, 0)
    mu /= mu.sum()
    w = mu + mu.T
    p = sigmoid(E1_REWARD[:, None] - E1_REWARD[None, :])
    return w * ((1 - noise) * p + noise * (1 - p))


@pytest.mark.parametrize("law", ["uniform", "ref"])
@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_population_weights(law, noise):
    pairs = tb.population(e1_problem(law), noise=noise)
    table = pairs.record_table()[0, 0].numpy()
    np.testing.assert_allclose(table, numpy_population_table(noise, law), rtol=1e-13, atol=1e-16)
    assert pairs.weight.sum().item() == pytest.approx(1.0, abs=1e-14)
    assert pairs.chosen.dtype == torch.int64 and pairs.weight.dtype == torch.float64
    assert pairs.prompt.shape == (1, 12) and bool((pairs.chosen != pairs.rejected).all())


def test_population_per_run_noise():
    pairs = tb.population(e1_problem(), noise=torch.tensor([0.0, 0.1, 0.3], dtype=torch.float64))
    assert pairs.weight.shape == (3, 12) and pairs.chosen.shape == (1, 12)
    for b, rate in enumerate([0.0, 0.1, 0.3]):
        np.testing.assert_allclose(pairs.record_table()[b, 0].numpy(), numpy_population_table(rate), rtol=1e-13)


def test_population_prompt_weights():
    prob = tb.Problem.random(tb.FlatSpace(3), prompts=2, seed=0, prompt_weights=[1.0, 3.0])
    table = tb.population(prob).record_table()[0]
    np.testing.assert_allclose(table.sum((-1, -2)).numpy(), [0.25, 0.75], rtol=1e-13)


def test_did_record_law():
    """DID: record (a, b) ∝ π_ref(a)·π_l(b), π_l ∝ π_ref·e^{-r}, a ≠ b, first wins."""
    prob = e1_problem("did")
    table = tb.population(prob).record_table()[0, 0].numpy()
    pi_l = E1_REF * np.exp(-E1_REWARD)
    pi_l /= pi_l.sum()
    expected = np.outer(E1_REF, pi_l)
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(table, expected / expected.sum(), rtol=1e-13)


def test_sample_pairs_frequencies_match_population():
    """With many draws the empirical record table approaches the population (CLT: 5 s.e.)."""
    prob = e1_problem("ref")
    n = 200_000
    sample = tb.sample_pairs(prob, n=n, noise=0.1, seed=3)
    empirical = sample.record_table()[0, 0].numpy()
    expected = numpy_population_table(0.1, "ref")
    stderr = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(empirical - expected) <= 5 * stderr + 1e-12)
    assert sample.weight[0, 0].item() == pytest.approx(1 / n)


def test_sample_pairs_per_run_seeds_are_independent_of_batch():
    prob = tb.Problem.random(tb.FlatSpace(5), prompts=2, seed=1)
    batch = tb.sample_pairs(prob, n=50, noise=torch.tensor([0.0, 0.2, 0.4]), seed=10)
    for b, rate in enumerate([0.0, 0.2, 0.4]):
        single = tb.sample_pairs(prob, n=50, noise=rate, seed=10 + b)
        for field in ("prompt", "chosen", "rejected"):
            assert torch.equal(getattr(batch, field)[b], getattr(single, field)[0])
    listed = tb.sample_pairs(prob, n=50, seed=[12, 11])
    for b, run_seed in enumerate([12, 11]):
        assert torch.equal(listed.chosen[b], tb.sample_pairs(prob, n=50, seed=run_seed).chosen[0])


def test_sample_pairs_determinism():
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=3, seed=2)
    a = tb.sample_pairs(prob, n=100, seed=5)
    b = tb.sample_pairs(prob, n=100, seed=5)
    assert torch.equal(a.chosen, b.chosen) and torch.equal(a.prompt, b.prompt)


def test_sample_pairs_flip_rate():
    """A deterministic preference (1 ≻ 0) flipped at rate 0.25: chosen = 0 in ~25% of records."""
    pref = torch.tensor([[[0.5, 0.0], [1.0, 0.5]]], dtype=torch.float64)
    prob = tb.Problem(tb.FlatSpace(2), torch.log(torch.tensor([[0.5, 0.5]])), preference=pref)
    n = 100_000
    sample = tb.sample_pairs(prob, n=n, noise=0.25, seed=0)
    share = (sample.chosen == 0).double().mean().item()
    assert abs(share - 0.25) < 5 * np.sqrt(0.25 * 0.75 / n)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "positive integer"),
    (dict(n=10, noise=0.5), "noise"),
    (dict(n=10, noise=-0.1), "noise"),
    (dict(n=10, seed=[]), "empty"),
    (dict(n=10, noise=torch.tensor([0.1, 0.2]), seed=[1, 2, 3]), "3 seeds but 2"),
])
def test_sample_pairs_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tb.sample_pairs(e1_problem(), **kwargs)


def test_population_validation():
    with pytest.raises(ValueError, match="noise"):
        tb.population(e1_problem(), noise=0.5)
    with pytest.raises(ValueError, match="Problem"):
        tb.population("not a problem")
