"""Iterative procedures: each step against a NumPy hand computation, batched runs against single
runs, fixed points against independent stationarity checks."""
import numpy as np
import pytest
import torch
from conftest import E1_REF, E1_REWARD, assert_exact_minimiser, newton_minimiser

import toybench as tb
from toybench import procedures
from toybench.objective import objective as population_objective
from toybench.rankings import policy_pairs

REF, REWARD = E1_REF, E1_REWARD
SKEW = np.array([[0.5, 0.9, 0.4], [0.1, 0.5, 0.7], [0.6, 0.3, 0.5]])


def t64(x):
    return torch.tensor(np.asarray(x), dtype=torch.float64)


def e1():
    return tb.Problem(tb.FlatSpace(4), t64([REF]).log(), reward=t64([REWARD]))


def skew(ref=(0.5, 0.3, 0.2)):
    return tb.Problem(tb.FlatSpace(3), t64([ref]).log(), preference=t64([SKEW]))


def normalise_log(v):
    return v - np.logaddexp.reduce(v)


def test_sppo_steps_by_hand():
    prob, ref = skew(), np.log([0.5, 0.3, 0.2])
    run = procedures.sppo(prob, 0.7, 3, tau=0.4)
    logp = ref.copy()
    for step in range(1, 4):
        logp = normalise_log(0.72 * logp + 0.28 * ref + 0.7 * SKEW @ np.exp(logp))
        np.testing.assert_allclose(run.logp[step, 0, 0].numpy(), logp, atol=1e-14)
    # the running average at step t is the mean of iterates 0..t−1
    np.testing.assert_allclose(run.average[3, 0, 0].numpy(), run.logp[:3, 0, 0].exp().mean(0).numpy(), atol=1e-15)


def test_batched_runs_equal_single_runs():
    prob = tb.Problem.random(tb.FlatSpace(5), prompts=2, seed=3, preference="general", reward_scale=2.0)
    etas = t64([0.3, 1.0, 2.5])
    batched = procedures.sppo(prob, etas, 7, tau=0.2)
    for b in range(3):
        single = procedures.sppo(prob, float(etas[b]), 7, tau=0.2)
        torch.testing.assert_close(batched.logp[:, b], single.logp[:, 0], atol=1e-13, rtol=0)
    betas = t64([0.5, 2.0])
    online = procedures.online_dpo(prob, betas, 5, lr=0.5, loss="ipo")
    for b in range(2):
        torch.testing.assert_close(online.logp[:, b], procedures.online_dpo(prob, float(betas[b]), 5, lr=0.5,
                                                                             loss="ipo").logp[:, 0], atol=1e-13, rtol=0)


def test_dno_step_by_hand_and_equals_hedge():
    prob = skew()
    run = procedures.dno(prob, 0.5, 2)
    logp = np.log([0.5, 0.3, 0.2])
    for step in (1, 2):
        logp = normalise_log(logp + SKEW @ np.exp(logp) / 0.5)
        np.testing.assert_allclose(run.logp[step, 0, 0].numpy(), logp, atol=1e-14)


@pytest.mark.parametrize("loss", ["dpo", "ipo"])
def test_online_step_gradient_against_autograd(loss):
    """One online step is s ← s − lr·∇_s of the population loss on pairs from the current, detached
    policy: the gradient rebuilt here with autograd over ``policy_pairs`` records and the loss zoo."""
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=5, preference="general", reward_scale=2.0)
    start = torch.log_softmax(t64(np.random.default_rng(0).normal(size=(2, 2, 4))), -1)
    run = procedures.online_dpo(prob, 0.7, 1, lr=0.3, loss=loss, init=start, noise=0.1)
    pairs = policy_pairs(prob, start, noise=0.1)
    logits = start.clone().requires_grad_(True)
    logp = torch.log_softmax(logits, -1)
    objective = population_objective(tb.losses.make(loss, beta=0.7), logp, pairs).sum()
    (grad,) = torch.autograd.grad(objective, logits)
    torch.testing.assert_close(run.final, torch.log_softmax(start - 0.3 * grad, -1), atol=1e-13, rtol=0)


def test_online_dpo_intransitive_fixed_point_is_stationary():
    """At online DPO's limit on the skew cycle, the DPO objective with μ frozen at π ⊗ π has zero
    gradient: Newton's method over logits with that μ (exact Hessian, |∇|/λ ≤ 1e-10, asserted)
    returns the same point, up to the procedure's own convergence after 1500 steps (1e-7)."""
    prob = skew()
    final = procedures.online_dpo(prob, 0.5, 1500, lr=2.0, record_every=1500).final[0, 0].numpy()
    pol = np.exp(final)
    mu = np.outer(pol, pol) * (1 - np.eye(3))
    weight = (mu + mu.T) / mu.sum() * SKEW
    ref = np.log([0.5, 0.3, 0.2])

    def objective(s):
        g = torch.log_softmax(s, -1) - torch.tensor(ref)
        return (torch.tensor(weight) * torch.logaddexp(torch.zeros(()), -0.5 * (g[:, None] - g[None, :]))).sum()

    found, grad_norm, curvature = newton_minimiser(objective, ref)
    assert_exact_minimiser(grad_norm, curvature)
    np.testing.assert_allclose(np.exp(normalise_log(found.numpy())), pol, atol=1e-7)


def test_online_ipo_fixed_point_solves_nash_equation():
    prob = skew()
    pol = procedures.online_dpo(prob, 0.5, 400, lr=0.3, loss="ipo", record_every=400).final[0, 0].exp().numpy()
    logits = np.log([0.5, 0.3, 0.2]) + SKEW @ pol / 0.5
    np.testing.assert_allclose(pol, np.exp(normalise_log(logits)), atol=1e-12)


def test_iterative_and_curry_rounds_by_hand():
    prob = e1()
    judge = np.array([[0.0, 1.0, 0.5, 0.2]])
    reset = procedures.iterative_dpo(prob, 0.5, 3, judge=judge)
    kept = procedures.iterative_dpo(prob, 0.5, 3, judge=judge, reference="initial")
    curry = procedures.curry_dpo(prob, 2.0, 3)
    for k in (1, 2, 3):
        np.testing.assert_allclose(reset.logp[k, 0, 0].numpy(), normalise_log(np.log(REF) + k * judge[0] / 0.5),
                                   atol=1e-14)
        np.testing.assert_allclose(kept.logp[k, 0, 0].numpy(), normalise_log(np.log(REF) + judge[0] / 0.5), atol=1e-14)
        np.testing.assert_allclose(curry.logp[k, 0, 0].numpy(), normalise_log(np.log(REF) + k * REWARD / 2.0),
                                   atol=1e-14)


def test_ofs_without_chasing_is_two_dpo_runs():
    """λ = 0: fast and slow are plain gradient descent on E1's population DPO loss at lr and lr·ratio
    (NumPy gradient); the fast one stays ahead, so no swap happens."""
    prob = e1()
    run = procedures.ofs_dpo(prob, 1.0, 20, lr=2.0, slow_ratio=0.25, lam=0.0)
    weight = np.outer(REF, REF) * (1 - np.eye(4))
    weight = (weight + weight.T) / weight.sum() / 1.0 / (1 + np.exp(-(REWARD[:, None] - REWARD[None, :])))

    def gradient(s):
        g = s - np.log(REF)
        slope = -weight / (1 + np.exp(g[:, None] - g[None, :]))
        grad_g = slope.sum(1) - slope.sum(0)
        return grad_g - np.exp(s) * grad_g.sum()

    fast, slow = np.log(REF), np.log(REF)
    for _ in range(20):
        fast, slow = normalise_log(fast - 2.0 * gradient(fast)), normalise_log(slow - 0.5 * gradient(slow))
    np.testing.assert_allclose(run.final[0, 0].numpy(), fast, atol=1e-13)
    np.testing.assert_allclose(run.slow[-1, 0, 0].numpy(), slow, atol=1e-13)


def test_record_every_and_final():
    run = procedures.sppo(skew(), 0.5, 10, record_every=4)
    assert run.steps.tolist() == [0, 4, 8, 10] and run.logp.shape == (4, 1, 1, 3)
    torch.testing.assert_close(run.final, procedures.sppo(skew(), 0.5, 10).final)


def test_bad_input():
    prob = skew()
    for call in (lambda: procedures.sppo(prob, 0.5, 0), lambda: procedures.dno(prob, 0.5, 0),
                 lambda: procedures.online_dpo(prob, 0.5, 0), lambda: procedures.ofs_dpo(prob, 0.5, 0),
                 lambda: procedures.iterative_dpo(e1(), 0.5, 0), lambda: procedures.curry_dpo(e1(), 0.5, 0)):
        with pytest.raises(ValueError, match="at least one iteration"):
            call()
    with pytest.raises(ValueError, match="eta·tau"):
        procedures.sppo(prob, 2.0, 3, tau=1.0)
    with pytest.raises(ValueError, match="loss"):
        procedures.online_dpo(prob, 0.5, 3, loss="kto")
    with pytest.raises(ValueError, match="init"):
        procedures.sppo(prob, 0.5, 3, init=torch.zeros(1, 4))
    with pytest.raises(ValueError, match="disagree"):
        procedures.sppo(prob, t64([0.5, 1.0]), 3, runs=3)
    with pytest.raises(ValueError, match="judge"):
        procedures.iterative_dpo(prob, 0.5, 2)
    with pytest.raises(ValueError, match="judge must"):
        procedures.iterative_dpo(e1(), 0.5, 2, judge=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="Bradley–Terry"):
        procedures.curry_dpo(prob, 0.5, 2)
    with pytest.raises(ValueError, match="record_every"):
        procedures.sppo(prob, 0.5, 3, record_every=0)


def test_run_blocks_equal_single_runs(monkeypatch):
    """Past RUN_BLOCK runs the pair-grid procedures split the run axis; each run is unchanged."""
    monkeypatch.setattr(procedures, "RUN_BLOCK", 2)
    prob = e1()
    betas = t64([0.5, 1.0, 2.0, 3.0, 4.0])
    online = procedures.online_dpo(prob, betas, 4, lr=t64([1.0, 2.0, 1.0, 0.5, 0.5]), record_every=2)
    ofs = procedures.ofs_dpo(prob, betas, 4, lr=1.0, lam=0.5, record_every=2)
    assert online.logp.shape == (3, 5, 1, 4) and ofs.slow.shape == (3, 5, 1, 4)
    for b, lr in enumerate([1.0, 2.0, 1.0, 0.5, 0.5]):
        single = procedures.online_dpo(prob, float(betas[b]), 4, lr=lr, record_every=2)
        torch.testing.assert_close(online.logp[:, b], single.logp[:, 0], atol=1e-14, rtol=0)
        single = procedures.ofs_dpo(prob, float(betas[b]), 4, lr=1.0, lam=0.5, record_every=2)
        torch.testing.assert_close(ofs.slow[:, b], single.slow[:, 0], atol=1e-14, rtol=0)
