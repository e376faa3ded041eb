"""List-wise losses against hand formulas in NumPy, their k = 2 reduction, and the exact list
oracle against the closed-form π*_β."""
import itertools
import math

import numpy as np
import pytest
import torch

import toybench as tb
from toybench.losses import list_objective, solve_lists
from toybench.rankings import Lists, list_population

LIST_LOSSES = ["plackett_luce", "lipo", "rank_dpo", "tpo", "irpo", "anchored_dpo", "curry_dpo"]


def t64(x):
    return torch.tensor(np.asarray(x), dtype=torch.float64)


def sp(t):
    return np.logaddexp(0.0, t)


def e1():
    return tb.problem.e1("ref")


def random_list(k, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(2, 3, k)), rng.normal(size=(2, 3, k))


@pytest.mark.parametrize("name", LIST_LOSSES)
def test_pair_is_a_list_of_two(name):
    """On k = 2 with hard labels, every list loss is a multiple of DPO's sp(−βΔ) except anchored
    (DPO at β = 1/τ) and LiPO/RankDPO (weight 1/ln 2 − 1/ln 3)."""
    loss = tb.losses.make(name)
    logp, ref = random_list(2, 0)
    value = loss(*(t64(a) for a in (logp[..., 0], logp[..., 1], ref[..., 0], ref[..., 1]))).numpy()
    delta = (logp[..., 0] - ref[..., 0]) - (logp[..., 1] - ref[..., 1])
    scale = {"lipo": 1 / math.log(2) - 1 / math.log(3), "rank_dpo": 1 / math.log(2) - 1 / math.log(3)}.get(name, 1.0)
    beta = 1 / loss.tau if name == "anchored_dpo" else loss.beta
    np.testing.assert_allclose(value, scale * sp(-beta * delta), rtol=1e-13)


def test_plackett_luce_by_hand():
    logp, ref = random_list(4, 1)
    s = 0.7 * (logp - ref)
    expected = sum(np.log(np.exp(s[..., k:]).sum(-1)) - s[..., k] for k in range(4))
    got = tb.losses.make("plackett_luce", beta=0.7).list_loss(t64(logp), t64(ref))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13)


def test_lipo_weights_by_hand():
    """k = 3, labels ψ = (1, 0.5, 0), model scores ranking items (1, 0, 2): ranks τ = (2, 1, 3)."""
    logp, ref = np.array([[[0.0, 1.0, -1.0]]]), np.zeros((1, 1, 3))
    psi = np.array([[[1.0, 0.5, 0.0]]])
    s = 0.5 * logp[0, 0]
    gain, disc = 2 ** psi[0, 0] - 1, 1 / np.log1p(np.array([2.0, 1.0, 3.0]))
    expected = sum(abs(gain[i] - gain[j]) * abs(disc[i] - disc[j]) * sp(-(s[i] - s[j]))
                   for i, j in itertools.permutations(range(3), 2) if psi[0, 0, i] > psi[0, 0, j])
    got = tb.losses.make("lipo", beta=0.5).list_loss(t64(logp), t64(ref), t64(psi))
    assert got.item() == pytest.approx(expected, rel=1e-13)
    # RankDPO with label ranks: τ = (1, 2, 3)
    disc = 1 / np.log1p(np.array([1.0, 2.0, 3.0]))
    expected = sum(abs(gain[i] - gain[j]) * abs(disc[i] - disc[j]) * sp(-(s[i] - s[j]))
                   for i, j in itertools.permutations(range(3), 2) if psi[0, 0, i] > psi[0, 0, j])
    got = tb.losses.make("rank_dpo", beta=0.5, rank_source="label").list_loss(t64(logp), t64(ref), t64(psi))
    assert got.item() == pytest.approx(expected, rel=1e-13)


def test_irpo_tpo_anchored_by_hand():
    logp, ref = random_list(4, 2)
    g = logp - ref
    # IRPO, positional labels (1, 2/3, 1/3, 0): relevant = first two; disc = 1/log2(1 + pos)
    disc = [1.0, 1 / math.log2(3)]
    inner = sum(disc[i] * 0.1 * (g[..., i] - g[..., j]) for i in (0, 1) for j in (2, 3))
    np.testing.assert_allclose(tb.losses.make("irpo").list_loss(t64(logp), t64(ref)).numpy(), sp(-inner), rtol=1e-13)
    # TPO: mean over the 12 ordered pairs of sp(−β·sign·(g_i − g_j)), every pair counted twice
    terms = [sp(-0.5 * (g[..., i] - g[..., j])) for i, j in itertools.combinations(range(4), 2)]
    np.testing.assert_allclose(tb.losses.make("tpo").list_loss(t64(logp), t64(ref)).numpy(),
                               sum(terms) / 6, rtol=1e-13)
    # anchored: KL(softmax(ψ/β_r) ‖ softmax(g/τ))
    scores = np.random.default_rng(3).normal(size=g.shape)
    q = np.exp(scores / 0.5) / np.exp(scores / 0.5).sum(-1, keepdims=True)
    model = np.exp(g / 0.8) / np.exp(g / 0.8).sum(-1, keepdims=True)
    got = tb.losses.make("anchored_dpo").list_loss(t64(logp), t64(ref), t64(scores))
    np.testing.assert_allclose(got.numpy(), (q * np.log(q / model)).sum(-1), rtol=1e-12)


def pistar(beta):
    logits = np.log([0.4, 0.3, 0.2, 0.1]) + np.array([0.0, 0.5, 1.5, 3.0]) / beta
    return np.exp(logits - np.logaddexp.reduce(logits))


@pytest.mark.parametrize("k, law, beta", [(2, "uniform", 1.0), (3, "ref", 0.5), (4, "uniform", 2.0)])
def test_plackett_luce_minimiser_is_pistar(k, law, beta):
    """PL lists of every size give π*_β (tolerance: the Newton certificate 1e-10 on a problem with
    curvature O(1) bounds the error well below 1e-8)."""
    loss = tb.losses.make("plackett_luce", beta=beta)
    sol = solve_lists(loss, list_population(e1(), k, law))
    np.testing.assert_allclose(sol.logp.exp().numpy()[0], pistar(beta), atol=1e-8)
    np.testing.assert_allclose(loss.target(e1()).exp().numpy()[0], pistar(beta), rtol=1e-12)


def test_anchored_list_target():
    loss = tb.losses.make("anchored_dpo", beta=0.5, tau=0.8)
    sol = solve_lists(loss, list_population(e1(), 3, reward_scores=True))
    np.testing.assert_allclose(sol.logp.exp().numpy()[0], pistar(0.5 / 0.8), atol=1e-8)
    np.testing.assert_allclose(loss.target(e1()).exp().numpy()[0], pistar(1 / 0.8), rtol=1e-12)


def test_list_objective_against_numpy():
    prob = e1()
    lists = Lists.from_records(prob, [0, 0], [[3, 1, 0], [2, 0, 1]], weights=[1.0, 3.0])
    policy = torch.log_softmax(t64(np.random.default_rng(4).normal(size=(2, 1, 4))), -1)
    got = list_objective(tb.losses.make("plackett_luce", beta=1.0), policy, lists)
    ref = np.log([0.4, 0.3, 0.2, 0.1])
    for b in range(2):
        g = policy[b, 0].numpy() - ref
        value = sum(w * sum(np.log(np.exp(g[list(row[k:])]).sum()) - g[row[k]] for k in range(3))
                    for w, row in ((0.25, (3, 1, 0)), (0.75, (2, 0, 1))))
        assert got[b].item() == pytest.approx(value, rel=1e-13)


def test_bad_input():
    with pytest.raises(ValueError, match="rank_source"):
        tb.losses.make("rank_dpo", rank_source="oracle")
    with pytest.raises(ValueError, match="stages"):
        tb.losses.make("curry_dpo", stages=0)
    with pytest.raises(ValueError, match="tau"):
        tb.losses.make("anchored_dpo", tau=0.0)
    with pytest.raises(ValueError, match="fixed objective"):
        solve_lists(tb.losses.make("lipo"), list_population(e1(), 2))
    with pytest.raises(ValueError, match="reward scores"):
        solve_lists(tb.losses.make("exo", mode="list"), list_population(e1(), 3))
    with pytest.raises(ValueError, match="not a list loss"):
        list_objective(tb.losses.make("dpo"), e1().ref_logp[None], list_population(e1(), 2))


@pytest.mark.parametrize("name, fields", [("exo", {}), ("fpo", {"divergence": "alpha", "alpha": 0.3}),
                                          ("fpo", {"divergence": "js"})])
def test_fpo_exo_lists_longer_than_two(name, fields):
    """k = 3, 4 lists with reward labels: minimised by π_ref·e^{r/(β·β_r)} (q = t on every list); the
    k = 2 list form equals the registered list/exact mode's per-record loss."""
    mode = "list" if name == "exo" else "exact"
    loss = tb.losses.make(name, beta=0.5, beta_reward=2.0, mode=mode, **fields)
    for k in (3, 4):
        sol = solve_lists(loss, list_population(e1(), k, reward_scores=True))
        np.testing.assert_allclose(sol.logp.exp().numpy()[0], pistar(1.0), atol=1e-8)
    logp, ref = random_list(2, 5)
    scores = np.random.default_rng(6).normal(size=logp.shape)
    pair = loss(*(t64(a) for a in (logp[..., 0], logp[..., 1], ref[..., 0], ref[..., 1])),
                chosen_reward=t64(scores[..., 0]), rejected_reward=t64(scores[..., 1]))
    np.testing.assert_allclose(loss.list_loss(t64(logp), t64(ref), t64(scores)).numpy(), pair.numpy(), rtol=1e-12)


def test_disco_group_loss_by_hand():
    rng = np.random.default_rng(7)
    pos, neg = rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 3, 4))
    loss = tb.losses.make("disco", length_normalized=False)
    expected = 10 * np.log(np.exp(neg / 10).sum(-1)) - pos.mean(-1)
    np.testing.assert_allclose(loss.group_loss(t64(pos), t64(neg)).numpy(), expected, rtol=1e-13)
    one = loss.group_loss(t64(pos[..., :1]), t64(neg[..., :1]))
    np.testing.assert_allclose(one.numpy(), loss(t64(pos[..., 0]), t64(neg[..., 0]), t64(0 * pos[..., 0]),
                                                 t64(0 * neg[..., 0])).numpy(), rtol=1e-13)
    with pytest.raises(ValueError, match="positive_len"):
        tb.losses.make("disco").group_loss(t64(pos), t64(neg))


def test_hard_rankings_without_a_finite_minimiser_raise():
    """One ranking (an acyclic ranking graph) has no finite minimiser; rankings whose graph is strongly
    connected do, and never-compared components keep their π_ref masses (here two 50/50 pairs)."""
    prob = e1()
    with pytest.raises(tb.NoFiniteMinimum, match="ranked above"):
        solve_lists(tb.losses.make("plackett_luce"), Lists.from_records(prob, [0], [[3, 1, 0, 2]]))
    sol = solve_lists(tb.losses.make("plackett_luce", beta=1.0),
                      Lists.from_records(prob, [0] * 4, [[0, 1], [1, 0], [2, 3], [3, 2]]))
    np.testing.assert_allclose(sol.logp.exp().numpy()[0], [0.4, 0.3, 0.2, 0.1], atol=1e-12)
