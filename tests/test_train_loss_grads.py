"""The loss side of training (toybench.loss_grads): the objective's value on every layout against the
record-list objective, and ∂L/∂log π for a given mini-batch against autograd."""
import numpy as np
import pytest
import torch

import toybench as tb
from toybench import loss_grads
from toybench.losses.base import LENGTH_INPUTS
from toybench.objective import record_inputs

LENGTHS = [1.0, 2.0, 3.0, 4.0, 6.0]
FLAT_LOSSES = [n for n in tb.losses.names() if not getattr(tb.losses.REGISTRY[n], "needs_table", False)]
"""Losses on a flat space; the token-level ones (autograd over the token views of the whole table)
are checked in tests/test_token_integration.py."""


def with_needed_fields(loss, pairs, rng):
    """``pairs`` plus a positive random field for every named per-record input the loss needs."""
    extra = {name: torch.tensor(rng.uniform(0.2, 1.0, size=(pairs.runs, pairs.size)))
             for name in loss.needs if name not in LENGTH_INPUTS}
    return pairs.with_fields(**extra) if extra else pairs


def autograd_objective(loss, logp, pairs, state_from="population"):
    """(Σ_k ω_k·ℓ_k ``[B]``, its gradient in log π) by autograd through the record-list inputs."""
    logp = logp.clone().requires_grad_(True)
    inputs = record_inputs(loss, logp, pairs)
    state = {}
    if loss.stateful:
        state = {"state": loss.population_state(inputs, pairs.weight) if state_from == "population"
                 else loss.update_state(loss.init_state(logp.shape[0], logp), inputs, pairs.weight)}
    value = (pairs.weight * loss(**inputs, **state)).sum(-1)
    (grad,) = torch.autograd.grad(value.sum(), logp)
    return value.detach(), grad


@pytest.mark.parametrize("data", ["population", "per_run_sample"])
@pytest.mark.parametrize("name", FLAT_LOSSES)
def test_value_equals_the_record_list_objective(name, data):
    prob = tb.Problem.random(tb.FlatSpace(5, lengths=LENGTHS), prompts=2, seed=3)
    rng = np.random.default_rng(7)
    loss = tb.losses.make(name)
    pairs = tb.population(prob) if data == "population" else tb.sample_pairs(prob, n=6, seed=[1, 2, 3])
    pairs = with_needed_fields(loss, pairs, rng)
    logp = torch.log_softmax(torch.tensor(rng.normal(size=(3, 2, 5))), dim=-1)
    side = loss_grads.LossGrads(loss, pairs, 3, like=logp)
    assert (side.grid is not None) == (data == "population" and not loss.stateful)
    expected, _ = autograd_objective(loss, logp, pairs)
    # float64 rounding of two summation orders over ≤ 40 records
    np.testing.assert_allclose(side.value(logp).numpy(), expected.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["dpo", "simpo", "kto", "alpha_dpo"])
def test_grad_on_a_given_minibatch_equals_autograd(name):
    """``grad(logp, records)`` is ∂/∂log π of the mini-batch objective (a stateful loss's statistics
    updated from those records first, from its initial state)."""
    prob = tb.Problem.random(tb.FlatSpace(5, lengths=LENGTHS), prompts=2, seed=4)
    rng = np.random.default_rng(2)
    loss = tb.losses.make(name)
    pairs = tb.population(prob)
    batch = tb.sample_pairs(prob, n=7, seed=[5, 6])
    logp = torch.log_softmax(torch.tensor(rng.normal(size=(2, 2, 5))), dim=-1)
    side = loss_grads.LossGrads(loss, pairs, 2, like=logp)
    _, expected = autograd_objective(loss, logp, batch, state_from="update")
    assert expected.abs().max() > 1e-4
    np.testing.assert_allclose(side.grad(logp, batch).numpy(), expected.numpy(), rtol=1e-10, atol=1e-13)


def test_value_changes_no_state():
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=1, seed=0)
    pairs = tb.population(prob)
    loss = tb.losses.make("kto")
    logp = torch.log_softmax(torch.tensor(np.random.default_rng(0).normal(size=(2, 1, 4))), dim=-1)
    side = loss_grads.LossGrads(loss, pairs, 2, like=logp)
    before = {key: value.clone() for key, value in side.states[0].items()}
    first = side.value(logp)
    assert all(torch.equal(before[key], side.states[0][key]) for key in before)
    assert torch.equal(first, side.value(logp))


PAIR_SUM_LOSSES = [n for n in FLAT_LOSSES if tb.losses.make(n).plain_margin
                   and tb.losses.make(n).dphi_pair_sum(torch.zeros(1, 1)) is not None]


@pytest.mark.parametrize("name", PAIR_SUM_LOSSES)
def test_dphi_pair_sum_declaration(name):
    """φ′(z) + φ′(−z) = κ on random z (per-run hyperparameters), and ``dphi_kernel_`` + ``dphi_shift``
    equals ``dphi``."""
    runs = 3
    beta = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    hypers = {"beta": beta, **({"eps": torch.tensor([0.05, 0.2, 0.4], dtype=torch.float64)}
                               if "eps" in tb.losses.fields(name) else {})}
    loss = tb.losses.make(name, **hypers)
    z = torch.randn(runs, 50, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 4
    kappa = torch.as_tensor(loss.dphi_pair_sum(z), dtype=torch.float64).expand(runs, 50)
    np.testing.assert_allclose((loss.dphi(z) + loss.dphi(-z)).numpy(), kappa.numpy(), rtol=1e-13, atol=1e-14)
    shift = torch.as_tensor(loss.dphi_shift(z), dtype=torch.float64)
    np.testing.assert_allclose((loss.dphi_kernel_(z.clone()) + shift).numpy(), loss.dphi(z).numpy(),
                               rtol=1e-13, atol=1e-14)


def test_dphi_pair_sums_by_hand():
    """κ derived by hand: DPO −σ(−z) − σ(z) = −1; cDPO 2ε − 1; rDPO −1/(1 − 2ε); IPO 2·φ′(0) = −2/β².
    The shifts c′ with φ′ = σ + c′: DPO −1; cDPO ε − 1; rDPO −(1 − ε)/(1 − 2ε)."""
    like = torch.zeros(1, 1)
    assert tb.losses.make("dpo").dphi_pair_sum(like) == -1.0
    assert tb.losses.make("cdpo", eps=0.2).dphi_pair_sum(like) == pytest.approx(-0.6, abs=1e-15)
    assert tb.losses.make("rdpo", eps=0.2).dphi_pair_sum(like) == pytest.approx(-1 / 0.6, abs=1e-15)
    assert tb.losses.make("ipo", beta=0.5).dphi_pair_sum(like) == pytest.approx(-8.0, abs=1e-15)
    assert tb.losses.make("dpo").dphi_shift(like) == -1.0                       # −σ(−z) = σ(z) − 1
    assert tb.losses.make("cdpo", eps=0.2).dphi_shift(like) == pytest.approx(-0.8, abs=1e-15)
    assert tb.losses.make("rdpo", eps=0.2).dphi_shift(like) == pytest.approx(-0.8 / 0.6, abs=1e-15)
    assert {"dpo", "cdpo", "rdpo", "ipo"} <= set(PAIR_SUM_LOSSES)


@pytest.mark.parametrize("data", ["population", "per_run_sample"])
@pytest.mark.parametrize("name", ["dpo", "cdpo", "rdpo"])
def test_pair_grid_in_ragged_run_blocks_equals_autograd(monkeypatch, name, data):
    """Five runs in blocks of 2, 2 and 1 (the grid buffer cut to the last block's size), per-run β
    and ε: the gradient and value equal autograd's on the record list."""
    monkeypatch.setattr(loss_grads, "RUN_BLOCK", 2)
    prob = tb.Problem.random(tb.FlatSpace(6), prompts=3, seed=8)
    hypers = {"beta": torch.tensor([0.3, 0.5, 1.0, 2.0, 4.0], dtype=torch.float64)}
    if name != "dpo":
        hypers["eps"] = torch.tensor([0.05, 0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    loss = tb.losses.make(name, **hypers)
    pairs = tb.population(prob, 0.1) if data == "population" else tb.sample_pairs(prob, n=200, seed=[1, 2, 3, 4, 5])
    logp = torch.log_softmax(torch.tensor(np.random.default_rng(9).normal(size=(5, 3, 6)) * 2), dim=-1)
    side = loss_grads.LossGrads(loss, pairs, 5, like=logp)
    assert side.pairs is not None and [b.stop - b.start for b in side.blocks] == [2, 2, 1]
    value, expected = autograd_objective(loss, logp, pairs)
    np.testing.assert_allclose(side.grad(logp).numpy(), expected.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(side.value(logp).numpy(), value.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("responses", [2, 3, 6, 7])
@pytest.mark.parametrize("data", ["population", "per_run_sample"])
@pytest.mark.parametrize("name", ["dpo", "cdpo", "ipo", "rdpo"])
def test_pair_grid_grad_and_value_equal_autograd(name, data, responses):
    """The once-per-unordered-pair gradient and value (odd and even Y: the d = Y/2 row counts each pair twice)
    on the full objective, per-run hyperparameters, shared and per-run cell weights."""
    prob = tb.Problem.random(tb.FlatSpace(responses), prompts=2, seed=5)
    rng = np.random.default_rng(3)
    hypers = {"beta": torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)}
    if name in ("cdpo", "rdpo"):
        hypers["eps"] = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    loss = tb.losses.make(name, **hypers)
    pairs = tb.population(prob, 0.1) if data == "population" else tb.sample_pairs(prob, n=300, seed=[1, 2, 3])
    logp = torch.log_softmax(torch.tensor(rng.normal(size=(3, 2, responses))), dim=-1)
    side = loss_grads.LossGrads(loss, pairs, 3, like=logp)
    assert side.pairs is not None
    value, expected = autograd_objective(loss, logp, pairs)
    np.testing.assert_allclose(side.grad(logp).numpy(), expected.numpy(), rtol=1e-10, atol=1e-13)
    # the value from φ on one cell per pair: float64 rounding of two summation orders
    np.testing.assert_allclose(side.value(logp).numpy(), value.numpy(), rtol=1e-12, atol=1e-14)
