import math

import numpy as np
import pytest
import torch
from conftest import E1_REF, e1_problem

import toybench as tb


def test_flat_space_validation():
    assert tb.FlatSpace(3).size == 3
    with pytest.raises(ValueError, match="K >= 2"):
        tb.FlatSpace(1)
    with pytest.raises(ValueError, match="at most"):
        tb.FlatSpace(10**6)
    with pytest.raises(ValueError, match="shape"):
        tb.FlatSpace(3, lengths=[1, 2])
    with pytest.raises(ValueError, match="positive"):
        tb.FlatSpace(3, lengths=[1, 0, 2])


def test_pair_weights_ref_law_by_hand():
    """w_ab = 2·π_a·π_b / (1 − Σπ²) for μ = π_ref ⊗ π_ref with the diagonal removed."""
    prob = e1_problem("ref")
    w = prob.pair_weights()[0].numpy()
    expected = 2 * np.outer(E1_REF, E1_REF) / (1 - (E1_REF**2).sum())
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(w, expected, rtol=1e-14)
    assert w[np.triu_indices(4, 1)].sum() == pytest.approx(1.0, abs=1e-14)


def test_pair_weights_uniform_and_table():
    w = e1_problem("uniform").pair_weights()[0].numpy()
    np.testing.assert_allclose(w[np.triu_indices(4, 1)], np.full(6, 1 / 6), rtol=1e-14)
    chain = e1_problem("chain").pair_weights()[0].numpy()
    assert chain[0, 1] == pytest.approx(1 / 3) and chain[1, 0] == pytest.approx(1 / 3)
    assert chain[0, 2] == 0 and chain[0, 3] == 0


def test_bt_preference_matrix():
    prob = e1_problem()
    M = prob.preference_matrix()[0].numpy()
    r = np.array([0, 0.5, 1.5, 3.0])
    np.testing.assert_allclose(M, 1 / (1 + np.exp(-(r[:, None] - r[None, :]))), rtol=1e-14)
    np.testing.assert_allclose(M + M.T, np.ones((4, 4)), atol=1e-15)


def test_random_is_reproducible_and_valid():
    a = tb.Problem.random(tb.FlatSpace(5), prompts=3, seed=7)
    b = tb.Problem.random(tb.FlatSpace(5), prompts=3, seed=7)
    c = tb.Problem.random(tb.FlatSpace(5), prompts=3, seed=8)
    assert torch.equal(a.reward, b.reward) and torch.equal(a.ref_logp, b.ref_logp)
    assert not torch.equal(a.reward, c.reward)
    np.testing.assert_allclose(a.ref_logp.exp().sum(-1).numpy(), np.ones(3), rtol=1e-14)
    g = tb.Problem.random(tb.FlatSpace(3), prompts=2, seed=1, preference="general")
    M = g.preference[0].numpy()
    np.testing.assert_allclose(M + M.T, np.ones((3, 3)), atol=1e-15)


@pytest.mark.parametrize("kwargs, message", [
    (dict(ref_logp=[[0.0, 0.0]]), "normalise"),
    (dict(ref_logp=[[math.log(0.5), math.log(0.5), 0.0]]), "shape"),
    (dict(ref_logp=[[0.0, -math.inf]]), "full support"),
    (dict(reward=[[0.0, float("nan")]]), "finite"),
    (dict(reward=[[0.0, 1.0, 2.0]]), "shape"),
    (dict(reward=None, preference=[[[0.5, 0.7], [0.7, 0.5]]]), "M \\+ Mᵀ = 1"),
    (dict(reward=None), "exactly one"),
    (dict(pair_dist="random"), "pair_dist"),
    (dict(pair_dist=torch.eye(2)[None]), "distinct"),
    (dict(prompt_weights=[-1.0]), "prompt_weights"),
])
def test_problem_validation(kwargs, message):
    base = dict(ref_logp=[[math.log(0.5), math.log(0.5)]], reward=[[0.0, 1.0]])
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        tb.Problem(tb.FlatSpace(2), **base)


def test_problem_rejects_unknown_keyword():
    with pytest.raises(TypeError):
        tb.Problem(tb.FlatSpace(2), [[math.log(0.5)] * 2], reward=[[0.0, 1.0]], temperature=1.0)


def test_random_validation():
    with pytest.raises(ValueError, match="prompts"):
        tb.Problem.random(tb.FlatSpace(3), prompts=0)
    with pytest.raises(ValueError, match="preference"):
        tb.Problem.random(tb.FlatSpace(3), preference="plackett")


def test_e1_is_the_worked_example():
    prob = tb.problem.e1()
    np.testing.assert_allclose(prob.ref_logp.exp().numpy(), [[0.4, 0.3, 0.2, 0.1]], rtol=1e-15)
    np.testing.assert_array_equal(prob.reward.numpy(), [[0.0, 0.5, 1.5, 3.0]])
    assert prob.pair_dist == "uniform" and tb.problem.e1("ref").pair_dist == "ref"
    chain = tb.problem.e1("chain").pair_weights()[0].numpy()
    np.testing.assert_array_equal(chain > 0, np.eye(4, k=1, dtype=bool) | np.eye(4, k=-1, dtype=bool))
    assert tb.problem.e1(lengths=[1, 2, 3, 4]).space.lengths.tolist() == [1.0, 2.0, 3.0, 4.0]
