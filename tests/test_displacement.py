"""Likelihood displacement, squeezing and their trajectories, against hand-computed numbers
(NumPy), finite differences, torch.optim, and the published toy values of Razin et al.
(arXiv 2410.08847) and Ren & Sutherland (arXiv 2407.10490) as recomputed independently."""
import numpy as np
import pytest
import torch

import toybench as tb
from toybench import displacement as D


def test_razin_construction_lowers_the_chosen_response():
    """Table of the LogLinear construction (independent float64 recomputation, 4 digits: abs 1e-4)."""
    policy, loss, pairs = D.razin_construction()
    snapshots, marks = D.trajectory(policy, loss, pairs, steps=2000, lr=0.1, every=100)
    expected = {100: (0.5537, 0.2289, 0.2174), 500: (0.1405, 0.0318, 0.8277), 1000: (0.0164, 0.0022, 0.9813),
                2000: (0.0009, 0.0001, 0.9990)}
    for step, probs in expected.items():
        index = marks.tolist().index(step)
        np.testing.assert_allclose(snapshots[index, 0, 0].exp(), probs, atol=1e-4)
    values = [tb.objective.objective(loss, s, pairs).item() for s in snapshots]
    assert all(b < a for a, b in zip(values, values[1:], strict=False))      # the loss falls throughout
    curves = D.curves(snapshots, pairs)
    assert (curves["chosen_logp_change"][1:] < 0).all() and curves["displaced_fraction"][-1].item() == 1.0
    assert curves["unseen_mass_gain"][-1].item() == pytest.approx(0.999 - 0.1, abs=1e-3)


def test_logit_rates_are_the_centred_inner_products_and_match_finite_differences():
    policy, _, _ = D.razin_construction()
    phi = policy.features[0].numpy()
    probs = np.array([0.6, 0.3, 0.1])
    centred = phi - probs @ phi
    np.testing.assert_allclose(centred @ (phi[0] - phi[1]), [-0.006, -0.046, 0.174], atol=1e-12)
    rates = D.logit_rates(phi, policy.logp()[0, 0].detach(), 0, 1)
    np.testing.assert_allclose(rates, centred @ (phi[0] - phi[1]), atol=1e-14)
    # d/dε ln π(y) at h = ε(φ_w − φ_l), central differences (error O(ε²) ≈ 1e-12)
    eps, direction = 1e-6, torch.tensor(phi[0] - phi[1])
    with torch.no_grad():
        policy.weights.copy_(eps * direction)
        up = policy.logp()[0, 0].clone()
        policy.weights.copy_(-eps * direction)
        down = policy.logp()[0, 0].clone()
    np.testing.assert_allclose((up - down) / (2 * eps), rates, rtol=1e-6, atol=1e-9)


def test_tabular_unseen_response_rises_while_rejected_outweighs_chosen():
    """π_ref = (0.2, 0.5, 0.3), record 0 ≻ 1, β = 1, SGD lr 0.01: π_2 peaks at 0.3217 at step 121."""
    prob = tb.Problem(tb.FlatSpace(3), torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64).log(),
                      reward=torch.zeros(1, 3))
    pairs = tb.Pairs.from_records(prob, [(0, 0, 1)])
    policy = tb.Tabular(prob, dtype=torch.float64)
    snapshots, _ = D.trajectory(policy, tb.losses.make("dpo", beta=1.0), pairs, steps=300, lr=0.01)
    unseen = snapshots[:, 0, 0, 2].exp()
    assert int(unseen.argmax()) == 121 and unseen.max().item() == pytest.approx(0.3217, abs=1e-4)
    chosen = snapshots[:, 0, 0, 0]
    assert (chosen[1:] > chosen[:-1]).all()
    np.testing.assert_allclose(D.curves(snapshots, pairs)["max_unseen_gain"][121], 0.3217 - 0.3, atol=1e-4)


@pytest.mark.parametrize("eta, expected", [(1.0, (0.8064, 0.1397, 0.0496, 0.0043)),
                                           (3.0, (0.9244, 0.0589, 0.0164, 0.0002))])
def test_squeeze_step_numbers(eta, expected):
    logp = torch.tensor([0.70, 0.20, 0.08, 0.02], dtype=torch.float64).log()
    np.testing.assert_allclose(D.squeeze_step(logp, 3, eta).exp(), expected, atol=1e-4)
    # the closed form p'_i ∝ p_i e^{η p_i} (i ≠ ȳ), p'_ȳ ∝ p_ȳ e^{−η(1 − p_ȳ)}
    p = np.array([0.70, 0.20, 0.08, 0.02])
    weights = p * np.exp(eta * p)
    weights[3] = p[3] * np.exp(-eta * (1 - p[3]))
    np.testing.assert_allclose(D.squeeze_step(logp, 3, eta).exp(), weights / weights.sum(), rtol=1e-12)


def test_trajectory_adam_matches_torch_optim_adam():
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=1)
    pairs = tb.population(prob)
    loss = tb.losses.make("dpo", beta=0.5)
    ours = tb.Tabular(prob, runs=2, dtype=torch.float64)
    snapshots, _ = D.trajectory(ours, loss, pairs, steps=25, lr=0.05, optimizer="adam", every=25)
    theirs = tb.Tabular(prob, runs=2, dtype=torch.float64)
    optimiser = torch.optim.Adam(theirs.parameters(), lr=0.05)
    for _ in range(25):
        optimiser.zero_grad()
        tb.objective.objective(loss, theirs.logp(), pairs).sum().backward()
        optimiser.step()
    np.testing.assert_allclose(snapshots[-1], theirs.logp().detach(), atol=1e-12)


def test_curves_by_hand_and_zero_unseen_mass_on_population_pairs():
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=1, seed=3)
    pairs = tb.population(prob)
    policy = tb.MLP(prob, runs=2, dtype=torch.float64, seed=4)
    snapshots, _ = D.trajectory(policy, tb.losses.make("dpo", beta=0.5), pairs, steps=5, lr=0.5)
    curves = D.curves(snapshots, pairs)
    assert curves["unseen_mass_gain"].abs().max().item() == 0.0
    w = (pairs.weight[0] / pairs.weight[0].sum()).numpy()
    change = (snapshots[-1, :, 0] - snapshots[0, :, 0]).numpy()
    np.testing.assert_allclose(curves["chosen_logp_change"][-1], change[:, pairs.chosen[0].numpy()] @ w, atol=1e-12)
    probs = snapshots[-1, :, 0].exp().numpy()
    np.testing.assert_allclose(curves["entropy"][-1], -(probs * np.log(probs)).sum(-1), atol=1e-12)
    top = snapshots[0, 0, 0].argmax()
    np.testing.assert_allclose(curves["squeezing_gain"][-1],
                               (snapshots[-1, :, 0, top].exp() - snapshots[0, :, 0, top].exp()).numpy(), atol=1e-12)


def test_trajectory_bad_input():
    policy, loss, pairs = D.razin_construction()
    with pytest.raises(ValueError, match="optimizer"):
        D.trajectory(policy, loss, pairs, 3, optimizer="rmsprop")
    with pytest.raises(ValueError, match="steps"):
        D.trajectory(policy, loss, pairs, -1)
    with pytest.raises(ValueError, match="lr"):
        D.trajectory(policy, loss, pairs, 3, lr=0.0)


def test_ches_against_per_prefix_states():
    """CHES = ⟨Σ h(y⁺<k), Σ h(y⁻<k)⟩ − ‖Σ h(y⁺<k)‖², with h from a separate per-prefix forward
    (tests/test_sequence_policies.py's plain transformer), summed over each string's steps in Python."""
    from test_sequence_policies import perturbed, reference_transformer_state

    prob = tb.Problem.random(tb.SequenceSpace(2, 3), prompts=2, seed=0)
    policy = perturbed(tb.TinyTransformer(prob, runs=2, width=4, layers=1, heads=2, dtype=torch.float64))
    pairs = tb.Pairs.from_records(prob, [(0, 0, 5), (1, 3, 9), (0, 12, 2)])
    space = prob.space
    scores = D.ches(policy, pairs).detach()

    def summed(b, p, y):
        tokens = space.tokens[y, : int(space.lengths[y])].tolist()
        total = torch.zeros(policy.width, dtype=torch.float64)
        for k in range(len(tokens) + 1):
            if k < space.max_len:       # the forced EOS step at max_len has no state
                total += reference_transformer_state(policy, b, p, tokens[:k]).detach()
        return total

    for b in range(2):
        for r, (p, w, l_) in enumerate(zip(pairs.prompt[0].tolist(), pairs.chosen[0].tolist(),
                                           pairs.rejected[0].tolist(), strict=True)):
            chosen, rejected = summed(b, p, w), summed(b, p, l_)
            assert scores[b, r].item() == pytest.approx((chosen @ rejected - chosen @ chosen).item(), abs=1e-10)
    with pytest.raises(ValueError, match="hidden states"):
        D.ches(tb.Tabular(prob), pairs)
