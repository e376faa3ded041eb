"""dpo, ipo, hinge, cdpo, rdpo: per-record values, TRL cross-checks, targets, validation."""
import math

import numpy as np
import pytest
import torch
from conftest import E1_PISTAR, E1_REF, E1_REWARD, e1_problem

import toybench as tb

RNG = np.random.default_rng(0)
POINTS = RNG.normal(size=(4, 3, 7))  # chosen, rejected, ref chosen, ref rejected: [B=3, N=7]


def softplus(t):
    return np.logaddexp(0.0, t)


def numpy_margin(c, r, rc, rr):
    return (c - rc) - (r - rr)


NUMPY_LOSSES = {
    "dpo": (dict(beta=0.3), lambda d: softplus(-0.3 * d)),
    "ipo": (dict(beta=0.3), lambda d: (d - 1 / 0.6) ** 2),
    "hinge": (dict(beta=0.3), lambda d: np.maximum(0.0, 1 - 0.3 * d)),
    "cdpo": (dict(beta=0.3, eps=0.2), lambda d: 0.8 * softplus(-0.3 * d) + 0.2 * softplus(0.3 * d)),
    "rdpo": (dict(beta=0.3, eps=0.2), lambda d: (0.8 * softplus(-0.3 * d) - 0.2 * softplus(0.3 * d)) / 0.6),
}


@pytest.mark.parametrize("name", sorted(NUMPY_LOSSES))
def test_per_record_against_numpy(name):
    kwargs, reference = NUMPY_LOSSES[name]
    loss = tb.losses.make(name, **kwargs)
    inputs = [torch.tensor(p) for p in POINTS]
    got = loss(*inputs).numpy()
    assert got.shape == (3, 7)
    np.testing.assert_allclose(got, reference(numpy_margin(*POINTS)), rtol=1e-12, atol=1e-14)


def test_hand_computed_values():
    """Δ = (−1 − (−2)) − (−3 − (−2.5)) = 1.5 with β = 1."""
    args = [torch.tensor([[v]], dtype=torch.float64) for v in (-1.0, -3.0, -2.0, -2.5)]
    assert tb.losses.make("dpo", beta=1.0)(*args).item() == pytest.approx(math.log(1 + math.exp(-1.5)), rel=1e-14)
    assert tb.losses.make("ipo", beta=1.0)(*args).item() == pytest.approx(1.0, rel=1e-14)      # (1.5 − 0.5)²
    assert tb.losses.make("hinge", beta=0.5)(*args).item() == pytest.approx(0.25, rel=1e-14)   # 1 − 0.75
    assert tb.losses.make("hinge", beta=1.0, reference_free=True)(*args).item() == 0.0         # 1 − 2 < 0


def test_trl_cross_checks():
    """TRL formulas written out from the trainer source (docs/losses.md).

    v1.9.0 `sigmoid`: −logσ(β·d); `hinge`: relu(1 − β·d); `robust`: [−(1−ε)logσ(βd) + ε logσ(−βd)]/(1−2ε);
    v0.28.0 `sigmoid` with label_smoothing ε (= cDPO): −(1−ε)logσ(β·logits) − ε logσ(−β·logits);
    v1.9.0 `ipo` with summed log-probs of equal token count 1: (d − 1/(2β))²."""
    beta, eps = 0.1, 0.1
    pc, pr, rc, rr = -4.2, -6.0, -4.5, -5.1
    d = (pc - rc) - (pr - rr)
    log_sig = lambda t: -math.log1p(math.exp(-t))  # noqa: E731
    args = [torch.tensor([[v]], dtype=torch.float64) for v in (pc, pr, rc, rr)]
    trl = {
        ("dpo", ()): -log_sig(beta * d),
        ("hinge", ()): max(0.0, 1 - beta * d),
        ("rdpo", (("eps", eps),)): (-(1 - eps) * log_sig(beta * d) + eps * log_sig(-beta * d)) / (1 - 2 * eps),
        ("cdpo", (("eps", eps),)): -(1 - eps) * log_sig(beta * d) - eps * log_sig(-beta * d),
        ("ipo", ()): (d - 1 / (2 * beta)) ** 2,
    }
    for (name, extra), expected in trl.items():
        loss = tb.losses.make(name, beta=beta, **dict(extra))
        assert loss(*args).item() == pytest.approx(expected, rel=1e-12), name


def test_ipo_length_normalized_needs_lengths():
    loss = tb.losses.make("ipo", beta=0.5, length_normalized=True)
    with pytest.raises(ValueError, match="lengths"):
        loss.required_inputs(tb.FlatSpace(3))
    args = [torch.tensor([[v]], dtype=torch.float64) for v in (-4.0, -6.0, -3.0, -7.0)]
    got = loss(*args, chosen_len=torch.tensor([[2.0]]), rejected_len=torch.tensor([[4.0]])).item()
    assert got == pytest.approx((-1.0 / 2 - 1.0 / 4 - 1.0) ** 2, rel=1e-14)


def test_per_run_hyperparameters_broadcast():
    betas = torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64)
    inputs = [torch.tensor(p) for p in POINTS]
    batched = tb.losses.make("cdpo", beta=betas, eps=0.2)(*inputs)
    for b, beta in enumerate(betas.tolist()):
        single = tb.losses.make("cdpo", beta=beta, eps=0.2)(*(x[b:b + 1] for x in inputs))
        torch.testing.assert_close(batched[b:b + 1], single, rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", sorted(NUMPY_LOSSES))
def test_closed_form_grad_matches_autograd(name):
    kwargs, _ = NUMPY_LOSSES[name]
    loss = tb.losses.make(name, **kwargs)
    inputs = [torch.tensor(p) for p in POINTS]
    fast = loss.input_grads(*inputs)
    slow = tb.losses.Loss.input_grads(loss, *inputs)
    for f, s in zip(fast, slow, strict=False):
        torch.testing.assert_close(f, s, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, kwargs, message", [
    ("dpo", dict(beta=0.0), "beta"),
    ("dpo", dict(beta=-1.0), "beta"),
    ("dpo", dict(beta=torch.tensor([0.1, -0.1])), "beta"),
    ("cdpo", dict(eps=0.5), "eps"),
    ("rdpo", dict(eps=-0.01), "eps"),
    ("ipo", dict(length_normalized="yes"), "length_normalized"),
    ("dpo", dict(label_smoothing=0.1), "accepted fields"),
    ("nope", dict(), "valid names"),
])
def test_validation(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tb.losses.make(name, **kwargs)


def test_direct_construction_rejects_unknown_keyword():
    with pytest.raises(ValueError, match="accepted fields"):
        tb.losses.DPO(beta=0.1, tau=1.0)
    assert tb.losses.make("dpo", beta=0.2) == tb.losses.DPO(beta=0.2)


def numpy_pistar(beta):
    logits = np.log(E1_REF) + E1_REWARD / beta
    return np.exp(logits - np.logaddexp.reduce(logits))


@pytest.mark.parametrize("law", ["uniform", "ref", "chain", "did"])
def test_dpo_target_is_pistar(law):
    target = tb.losses.make("dpo", beta=1.0).target(e1_problem(law))
    np.testing.assert_allclose(target.exp()[0].numpy(), numpy_pistar(1.0), rtol=1e-12)
    np.testing.assert_allclose(target.exp()[0].numpy(), E1_PISTAR, atol=1e-6)
    assert tb.losses.make("dpo", beta=1.0).target(e1_problem(law), noise=0.1) is None


def test_rdpo_target_only_at_matching_noise():
    loss = tb.losses.make("rdpo", beta=0.5, eps=0.1)
    np.testing.assert_allclose(loss.target(e1_problem(), noise=0.1).exp()[0].numpy(), numpy_pistar(0.5), rtol=1e-12)
    assert loss.target(e1_problem(), noise=0.2) is None


def test_ipo_target_product_law_closed_form():
    """Prop. 3: π* ∝ π_ref·exp(p(y ≻ μ)/τ) for μ ⊗ μ, μ = π_ref and uniform. Dropping the diagonal
    of μ ⊗ μ rescales every w_ab by one constant, which leaves the projection unchanged."""
    p = 1 / (1 + np.exp(-(E1_REWARD[:, None] - E1_REWARD[None, :])))
    for law, mu in (("ref", E1_REF), ("uniform", np.full(4, 0.25))):
        for tau in (0.3, 1.0):
            logits = np.log(E1_REF) + (p @ mu) / tau
            expected = np.exp(logits - np.logaddexp.reduce(logits))
            got = tb.losses.make("ipo", beta=tau).target(e1_problem(law)).exp()[0].numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_ipo_target_chain_graph():
    """On the chain each pair's margin (2p − 1)/(2τ) is attained exactly (a tree)."""
    tau = 0.5
    p = 1 / (1 + np.exp(-np.diff(E1_REWARD)))
    G = np.concatenate([[0.0], np.cumsum((2 * p - 1) / (2 * tau))])
    logits = np.log(E1_REF) + G
    expected = np.exp(logits - np.logaddexp.reduce(logits))
    got = tb.losses.make("ipo", beta=tau).target(e1_problem("chain")).exp()[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_targets_with_per_run_beta():
    betas = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    target = tb.losses.make("dpo", beta=betas).target(e1_problem())
    assert target.shape == (3, 1, 4)
    for b, beta in enumerate(betas.tolist()):
        np.testing.assert_allclose(target[b, 0].exp().numpy(), numpy_pistar(beta), rtol=1e-12)
