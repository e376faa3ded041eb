"""Policies: Tabular (start, init, dtype/device, its closed-form VJP, validation) and the default
autograd VJP of the policy protocol."""
import numpy as np
import pytest
import torch
from conftest import E1_REF, e1_problem

import toybench as tb
from toybench.policies import Policy, Tabular, logp_and_vjp


def test_starts_at_reference_with_a_copy_per_run(e1):
    policy = Tabular(e1, runs=3)
    logp = policy.logp()
    assert logp.shape == (3, 1, 4) and logp.dtype == torch.float32
    assert policy.runs == 3 and policy.dtype == torch.float32 and policy.device == torch.device("cpu")
    # float32 rounding of log-probs of size ~2
    np.testing.assert_allclose(logp.detach().numpy(), np.tile(np.log(E1_REF), (3, 1, 1)), rtol=0, atol=1e-6)
    (params,) = policy.parameters()
    assert params.requires_grad and params.shape == (3, 1, 4)
    with torch.no_grad():
        params[0, 0, 0] += 1.0
    assert torch.equal(policy.logp()[1], policy.logp()[2]) and not torch.equal(policy.logp()[0], policy.logp()[1])


def test_init_logits_shared_or_per_run_float64():
    prob = tb.Problem.random(tb.FlatSpace(3), prompts=2, seed=1)
    logits = np.random.default_rng(0).normal(size=(2, 2, 3)) * 3
    expected = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_run = Tabular(prob, runs=2, init=torch.tensor(logits), dtype=torch.float64)
    np.testing.assert_allclose(per_run.logp().detach().numpy(), expected, rtol=1e-14, atol=1e-14)
    shared = Tabular(prob, runs=4, init=logits[1], dtype=torch.float64)
    np.testing.assert_allclose(shared.logp().detach().numpy(), np.tile(expected[1], (4, 1, 1)), rtol=1e-14, atol=1e-14)


def test_vjp_is_the_softmax_jacobian_transpose():
    prob = tb.Problem.random(tb.FlatSpace(5), prompts=3, seed=2)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, 3, 5))
    dlogp = rng.normal(size=(4, 3, 5))
    policy = Tabular(prob, runs=4, init=torch.tensor(logits), dtype=torch.float64)
    pi = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    # J[y, k] = ∂ log π_y / ∂ s_k = 1[y = k] − π_k; the logit gradient is Jᵀ·dlogp
    jacobian = np.eye(5) - pi[..., None, :]
    expected = np.einsum("bpyk,bpy->bpk", jacobian, dlogp)
    (got,) = policy.vjp(torch.tensor(dlogp))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-14)  # float64 rounding
    assert not got.requires_grad


def test_vjp_reuses_the_forward_table_only_while_the_logits_are_unchanged():
    """A step's ``logp()`` is reused by ``vjp``; after an update (or an edit of that table) it is not."""
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=0)
    rng = np.random.default_rng(0)
    dlogp = torch.tensor(rng.normal(size=(2, 2, 4)))
    policy = Tabular(prob, runs=2, dtype=torch.float64)
    with torch.no_grad():
        table = policy.logp()
        policy.logits.add_(torch.tensor(rng.normal(size=(2, 2, 4))))     # an optimiser step
    (after_step,) = policy.vjp(dlogp)
    with torch.no_grad():
        policy.logp().add_(1.0)                                          # a caller edits the table
    (after_edit,) = policy.vjp(dlogp)
    for got in (after_step, after_edit):
        pi = torch.softmax(policy.logits.detach(), -1)
        expected = dlogp - pi * dlogp.sum(-1, keepdim=True)              # Jᵀ·g at the current logits
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12, atol=1e-14)
    assert not torch.allclose(torch.softmax(table, -1), torch.softmax(policy.logits.detach(), -1))


class LogLinear(Policy):
    """Test-only: log π(y|x) = log_softmax_y(θ_b · φ(x, y)) with fixed features φ ``[P, Y, D]``."""

    def __init__(self, prob, runs, features, theta):
        self.prob, self.runs, self.dtype, self.device = prob, runs, torch.float64, torch.device("cpu")
        self.features = features
        self.theta = theta.clone().requires_grad_(True)

    def logp(self):
        return torch.log_softmax(torch.einsum("pyd,bd->bpy", self.features, self.theta), dim=-1)

    def parameters(self):
        return [self.theta]


def test_default_vjp_is_autograd_of_the_weighted_log_probs():
    """logp_and_vjp without a policy vjp: ∂/∂θ Σ g·log π by hand, for a log-linear policy:
    ∂ log π_y/∂θ = φ_y − Σ_k π_k φ_k, so the VJP is Σ_{p,y} g_py·(φ_py − E_π φ_p)."""
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=5)
    rng = np.random.default_rng(3)
    features, theta = rng.normal(size=(2, 4, 3)), rng.normal(size=(5, 3))
    grad_logp = rng.normal(size=(5, 2, 4))
    policy = LogLinear(prob, 5, torch.tensor(features), torch.tensor(theta))
    logp, vjp = logp_and_vjp(policy)
    scores = np.einsum("pyd,bd->bpy", features, theta)
    pi = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    np.testing.assert_allclose(logp.numpy(), np.log(pi), rtol=1e-12, atol=1e-14)
    centred = features[None] - np.einsum("bpy,pyd->bpd", pi, features)[:, :, None, :]   # [B, P, Y, D]
    expected = np.einsum("bpy,bpyd->bd", grad_logp, centred)
    (got,) = vjp(torch.tensor(grad_logp))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-13)  # float64 rounding
    assert not logp.requires_grad


def test_own_vjp_is_used_without_a_graph():
    prob = tb.Problem.random(tb.FlatSpace(3), prompts=1, seed=0)
    policy = Tabular(prob, runs=2, dtype=torch.float64)
    logp, vjp = logp_and_vjp(policy)
    assert vjp == policy.vjp and logp.grad_fn is None


def test_policy_protocol_is_abstract():
    with pytest.raises(TypeError):
        Policy()


@pytest.mark.parametrize("kwargs, message", [
    (dict(runs=0), "runs must be an integer >= 1"),
    (dict(runs=2.0), "runs must be an integer >= 1"),
    (dict(runs=True), "runs must be an integer >= 1"),
    (dict(dtype=torch.int64), "floating torch dtype"),
    (dict(dtype="float32"), "floating torch dtype"),
    (dict(init=torch.zeros(2, 4)), r"init must have shape \[1, 4\] or \[1, 1, 4\]"),
    (dict(runs=2, init=torch.zeros(3, 1, 4)), r"init must have shape"),
    (dict(init=torch.tensor([[0.0, -float("inf"), 0.0, 0.0]])), "init must be finite"),
    (dict(init=torch.tensor([[0.0, float("nan"), 0.0, 0.0]])), "init must be finite"),
    (dict(init="logits"), "init must be array-like"),
    (dict(device="gpu7"), "device must be a torch device"),
])
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Tabular(e1_problem(), **kwargs)


def test_needs_a_problem():
    with pytest.raises(ValueError, match="Tabular needs a Problem"):
        Tabular(torch.zeros(1, 4))
