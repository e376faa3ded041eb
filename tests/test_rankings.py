"""Plackett–Luce, the Lists data type, general preference matrices and policy-dependent pair laws,
against hand formulas and separate NumPy computations."""
import itertools
import math

import numpy as np
import pytest
import torch
from conftest import E1_REF, E1_REWARD

import toybench as tb
from toybench.rankings import (
    Lists,
    annotator_mixture,
    list_population,
    model_pair_law,
    pl_log_prob,
    pl_ranking_probs,
    policy_pairs,
    rock_paper_scissors,
    sample_lists,
    sample_policy_pairs,
    smoothed_preference,
    verifier_preference,
)


def t64(x):
    return torch.tensor(np.asarray(x), dtype=torch.float64)


REWARD, REF = E1_REWARD, E1_REF


def e1():
    return tb.Problem(tb.FlatSpace(4), t64([REF]).log(), reward=t64([REWARD]))


def np_pl(reward, order):
    """Plackett–Luce by the product formula, one factor per position."""
    prob, rest = 1.0, list(order)
    for item in order:
        prob *= math.exp(reward[item]) / sum(math.exp(reward[j]) for j in rest)
        rest.remove(item)
    return prob


def test_pl_probability_by_hand():
    orders, probs = pl_ranking_probs(t64(REWARD), [0, 2, 3])
    assert len(orders) == 6 and probs.sum().item() == pytest.approx(1.0, abs=1e-15)
    for order, prob in zip(orders.tolist(), probs.tolist(), strict=True):
        assert prob == pytest.approx(np_pl(REWARD, order), rel=1e-13)
    assert pl_log_prob(t64([[3.0, 1.5]]))[0].item() == pytest.approx(-math.log1p(math.exp(-1.5)), rel=1e-14)


def test_pl_pairwise_marginal_is_bradley_terry():
    """Luce's choice axiom: P(i ranked above j) = σ(r_i − r_j) inside any candidate set."""
    orders, probs = pl_ranking_probs(t64(REWARD), [0, 1, 2, 3])
    for i, j in itertools.permutations(range(4), 2):
        above = sum(p for o, p in zip(orders.tolist(), probs.tolist(), strict=True) if o.index(i) < o.index(j))
        assert above == pytest.approx(1 / (1 + math.exp(REWARD[j] - REWARD[i])), abs=1e-13)


@pytest.mark.parametrize("k, law", [(2, "uniform"), (3, "ref"), (4, "ref")])
def test_list_population_weights(k, law):
    lists = list_population(e1(), k, law)
    assert lists.items.shape == (1, math.perm(4, k), k)
    assert lists.weight.sum().item() == pytest.approx(1.0, abs=1e-14)
    # candidate-set law by hand: k draws without replacement from π_ref, summed over orders
    for subset in itertools.combinations(range(4), k):
        expected = 0.0
        for order in itertools.permutations(subset):
            prob, used = 1.0, 0.0
            for item in order:
                prob *= REF[item] / (1 - used)
                used += REF[item]
            expected += prob
        if law == "uniform":
            expected = 1 / math.comb(4, k)
        mask = [set(row) == set(subset) for row in lists.items[0].tolist()]
        assert lists.weight[0, mask].sum().item() == pytest.approx(expected, rel=1e-12)
        row = lists.items[0].tolist().index(list(subset[::-1]))
        assert lists.weight[0, row].item() == pytest.approx(expected * np_pl(REWARD, subset[::-1]), rel=1e-12)


def test_sample_lists_frequencies_and_seeds():
    prob = e1()
    n = 20000
    lists = sample_lists(prob, n, 3, "uniform", seed=5)
    population = list_population(prob, 3, "uniform")
    counts = {}
    for row in lists.items[0].tolist():
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    for row, weight in zip(population.items[0].tolist(), population.weight[0].tolist(), strict=True):
        # 5 binomial standard deviations
        assert abs(counts.get(tuple(row), 0) / n - weight) <= 5 * math.sqrt(weight * (1 - weight) / n) + 1e-12
    batched = sample_lists(prob, 50, 3, seed=[7, 9])
    assert batched.runs == 2
    assert torch.equal(batched.items[1], sample_lists(prob, 50, 3, seed=9).items[0])
    assert torch.equal(sample_lists(prob, 50, 3, seed=7).items, sample_lists(prob, 50, 3, seed=7).items)


def test_lists_to_pairs():
    lists = Lists.from_records(e1(), [0, 0], [[3, 1, 0], [2, 0, 1]], weights=[1.0, 3.0])
    pairs = lists.pairs()
    assert pairs.chosen.tolist() == [[3, 3, 1, 2, 2, 0]] and pairs.rejected.tolist() == [[1, 0, 0, 0, 1, 1]]
    np.testing.assert_allclose(pairs.weight.numpy(), [[1 / 12] * 3 + [3 / 12] * 3], rtol=1e-15)


def test_lists_bad_input():
    prob = e1()
    with pytest.raises(ValueError, match="permutation"):
        Lists.from_records(prob, [0], [[1, 1, 2]])
    with pytest.raises(ValueError, match="padding"):
        Lists.from_records(prob, [0, 0], [[1, 2, 3], [0, 1]])
    with pytest.raises(ValueError, match="0..3"):
        Lists.from_records(prob, [0], [[1, 4]])
    with pytest.raises(ValueError, match="k must"):
        list_population(prob, 5)
    with pytest.raises(ValueError, match="candidates"):
        list_population(prob, 2, "pairs")
    with pytest.raises(ValueError, match="Bradley–Terry"):
        list_population(rock_paper_scissors(), 2)
    with pytest.raises(ValueError, match="n must"):
        sample_lists(prob, 0, 2)


def test_preference_validation():
    ref = t64([[0.5, 0.5]]).log()
    with pytest.raises(ValueError, match="M \\+ Mᵀ = 1"):
        tb.Problem(tb.FlatSpace(2), ref, preference=t64([[[0.5, 0.7], [0.4, 0.5]]]))
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        tb.Problem(tb.FlatSpace(2), ref, preference=t64([[[0.5, 1.2], [-0.2, 0.5]]]))
    with pytest.raises(ValueError, match="win"):
        rock_paper_scissors(0.3)


def test_rock_paper_scissors_and_condorcet_mixture():
    rps = rock_paper_scissors(0.8).preference_matrix()[0]
    assert rps[0, 1] == rps[1, 2] == rps[2, 0] == pytest.approx(0.8)
    # three annotators with the rotated orders 0>1>2, 1>2>0, 2>0>1 and reward gap 2 each step
    rewards = t64([[[4, 2, 0]], [[0, 4, 2]], [[2, 0, 4]]])
    prob = annotator_mixture(tb.FlatSpace(3), t64([[1 / 3] * 3]).log(), rewards, [1, 1, 1])
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    expected = (sig(2) + sig(2) + sig(-4)) / 3                     # P(0 ≻ 1): two annotators agree
    pref = prob.preference_matrix()[0]
    assert pref[0, 1].item() == pytest.approx(expected, rel=1e-14)
    assert pref[1, 2].item() == pytest.approx(expected, rel=1e-14) and pref[2, 0].item() == pytest.approx(expected)
    assert expected > 0.5                                          # a cycle: intransitive
    with pytest.raises(ValueError, match="weights"):
        annotator_mixture(tb.FlatSpace(3), t64([[1 / 3] * 3]).log(), rewards, [1, 1])


def test_policy_pairs_equal_population_under_the_same_table():
    prob = tb.Problem.random(tb.FlatSpace(5), prompts=2, seed=1, preference="general")
    gen = torch.Generator().manual_seed(0)
    policy = torch.log_softmax(torch.randn(3, 2, 5, generator=gen, dtype=torch.float64), -1)
    pairs = policy_pairs(prob, policy, noise=0.1)
    assert pairs.weight.shape == (3, 2 * 5 * 4)
    for b in range(3):
        pol = policy[b].exp().numpy()
        table = pol[:, :, None] * pol[:, None, :]
        reference = tb.population(prob.replace(pair_dist=torch.tensor(table)), noise=0.1)
        torch.testing.assert_close(pairs.record_table()[b], reference.record_table()[0], rtol=1e-13, atol=1e-16)
    # at π_ref with π_ref as opponent it is the default pair law
    torch.testing.assert_close(policy_pairs(prob, prob.ref_logp).record_table(),
                               tb.population(prob).record_table(), rtol=1e-13, atol=1e-16)
    with pytest.raises(ValueError, match="normalised"):
        policy_pairs(prob, torch.zeros(2, 5))


def test_verifier_preference_by_hand():
    """P(a ≻ b) = s_a(1 − s_b) + ½[s_a s_b + (1 − s_a)(1 − s_b)], s = tpr·c + fpr·(1 − c)."""
    correct = np.array([[1.0, 0.0, 0.5]])
    prob = verifier_preference(tb.FlatSpace(3), t64([[1 / 3] * 3]).log(), correct, true_positive=0.9,
                               false_positive=0.2)
    s = 0.9 * correct[0] + 0.2 * (1 - correct[0])
    for a, b in itertools.product(range(3), repeat=2):
        expected = s[a] * (1 - s[b]) + 0.5 * (s[a] * s[b] + (1 - s[a]) * (1 - s[b]))
        assert prob.preference_matrix()[0, a, b].item() == pytest.approx(expected, abs=1e-15)
    with pytest.raises(ValueError, match="probabilities"):
        verifier_preference(tb.FlatSpace(3), t64([[1 / 3] * 3]).log(), correct, true_positive=1.5)


def test_model_pair_law_and_smoothed_preference():
    prob = e1()
    strong = torch.log_softmax(2 * prob.reward, -1)
    law = model_pair_law(strong, prob.ref_logp)
    np.testing.assert_allclose(law[0].numpy(), np.outer(np.exp(strong[0].numpy()), REF), rtol=1e-14)
    soft = smoothed_preference(prob, 0.3).preference_matrix()[0].numpy()
    sig = 1 / (1 + np.exp(-(REWARD[:, None] - REWARD[None, :])))
    np.testing.assert_allclose(soft, 0.7 * sig + 0.15, rtol=1e-14)
    # smoothing by ε is label noise ε/2: the same population records
    torch.testing.assert_close(tb.population(smoothed_preference(prob, 0.3)).record_table(),
                               tb.population(prob, noise=0.15).record_table(), rtol=1e-13, atol=1e-16)
    with pytest.raises(ValueError, match="smoothing"):
        smoothed_preference(prob, 1.0)
    with pytest.raises(ValueError, match="two \\[P, Y\\]"):
        model_pair_law(strong[0])


def test_lists_from_scores():
    lists = Lists.from_scores(e1(), [0, 0], [[0, 1, 2], [3, 2, 1]], [[0.1, 0.9, 0.5], [0.2, 0.7, 0.7]])
    assert lists.items.tolist() == [[[1, 2, 0], [2, 1, 3]]]
    np.testing.assert_array_equal(lists.scores.numpy(), [[[0.9, 0.5, 0.1], [0.7, 0.7, 0.2]]])
    with pytest.raises(ValueError, match="must match"):
        Lists.from_scores(e1(), [0], [[0, 1]], [[0.1, 0.2, 0.3]])


def test_sample_policy_pairs_frequencies_and_seeds():
    """Record frequencies match ``policy_pairs``' exact weights (5 binomial standard deviations)."""
    prob = e1()
    policy = torch.log_softmax(t64([[[0.0, 1.0, 0.5, -1.0]], [[1.0, 0.0, 0.0, 0.0]]]), -1)
    n = 20000
    sampled = sample_policy_pairs(prob, policy, n, seed=3)
    exact = policy_pairs(prob, policy).record_table()
    for b in range(2):
        counts = sampled.record_table()[b]
        spread = 5 * torch.sqrt(exact[b] * (1 - exact[b]) / n) + 1e-12
        assert ((counts - exact[b]).abs() <= spread).all()
    single = sample_policy_pairs(prob, policy[1], 50, seed=4)
    assert torch.equal(sample_policy_pairs(prob, policy, 50, seed=3).chosen[1], single.chosen[0])
