"""Every registered loss at extreme inputs: log-probs down to −1e4 (probabilities far below 1e-300),
log-ratios and margins up to ±1e4, in float64 and float32.

The rule tested: per-record values, closed-form ``input_grads`` and autograd gradients are never
NaN, and are finite wherever the exact value is representable. A loss that grows exponentially in
its margin (BPO's KLIEP/LSIF/BA generators, SBA, Tan's −ζe^{−ζ}, f-DPO's forward-KL and α scores,
AlphaPO's reward with α ≠ 0) has values like e^{1000} at β·Δ = −1000: finite mathematically,
beyond float64's range (e^{709.8}); there the correct floating-point answer is ±inf, and the test
asserts finiteness wherever the largest exponent is below the float range by a wide margin.
"""
import itertools
import math

import mpmath
import numpy as np
import pytest
import torch

import toybench as tb
from toybench._numerics import bisect, exp_difference, log1mexp, log_sigmoid
from toybench.objective import record_inputs

LOG_PROBS = [-1e-300, -1e-8, -0.7, -30.0, -690.0, -1e4]   # −1e-300: probability 1 − 1e-300
LENGTHS = [1.0, 3.0, 50.0]
SCORE_GAPS = [-1e4, -1.0, 1e-3, 2.0, 1e4]                   # nonzero: tan_principled divides by it
WIN_PROBS = [0.0, 1e-300, 0.5, 1.0]
REWARDS = [-1e4, 0.0, 3.0, 1e4]
SLACK = 30.0
"""Nats below log(float max) where an exponential loss must still be finite: the polynomial
factors beside its largest exponential (|z| ≤ 2e4·β, β, 1/s, 1/α) are below e^{15} here."""

EXTRA_VARIANTS = [
    ("bpo", dict(h="kliep")), ("bpo", dict(h="lsif")), ("bpo", dict(h="ba", lam=-0.5)),
    ("bpo", dict(h="ba", lam=2.0)), ("bpo", dict(clip_min=0.01)), ("bpo", dict(h="lsif", clip_min=0.01, clip_max=100.0)),
    ("sba", dict(lam=0.0)), ("sba", dict(lam=1.0)), ("sba", dict(lam=torch.tensor([0.0, -0.5, 1.0]))),
    ("fdpo", dict(divergence="forward_kl")), ("fdpo", dict(divergence="alpha", alpha=0.3)), ("fdpo", dict(divergence="js")),
    ("fpo", dict(divergence="reverse_kl")), ("fpo", dict(divergence="forward_kl")), ("fpo", dict(divergence="js")),
    ("fpo", dict(divergence="jeffreys")), ("fpo", dict(divergence="hellinger")), ("fpo", dict(mode="exact")),
    ("exo", dict(mode="list")), ("sppo", dict(mode="single")), ("sppo", dict(mode="hard")),
    ("rpo", dict(variant="liu")), ("spo", dict(reading="vf")), ("bco", dict(delta="free")), ("bco", dict(delta=0.5)),
    ("tan_principled", dict(zeta="reward_scaled")), ("hinge", dict(reference_free=True)),
    ("ipo", dict(length_normalized=True)), ("alpha_po", dict(alpha=0.5, gamma=1.0, length_normalized=True, nll_weight=1.0)),
    ("alpha_po", dict(alpha=torch.tensor([0.0, -0.5, 2.0]))), ("dpo", dict(beta=10.0)),
]
TOKEN_LOSSES = [name for name in tb.losses.names()
                if any(need.endswith("_token_logratio") for need in tb.losses.make(name).needs)]
VARIANTS = [(name, {}) for name in tb.losses.names() if name not in TOKEN_LOSSES] + EXTRA_VARIANTS


def _margin(loss, c, r, rc, rr):
    return loss.hp("beta", c) * ((c - rc) - (r - rr))


def _largest_exponent(loss, c, r, rc, rr, extras):
    """The largest exponent x of an e^x term in the loss or its gradient (None: no such term)."""
    name = loss.name
    if name == "bpo" and loss.h == "kliep":
        return -_margin(loss, c, r, rc, rr)
    if name == "bpo" and loss.h == "lsif":
        z = _margin(loss, c, r, rc, rr)
        return torch.maximum(-2 * z, z)
    if name == "sba" or name == "bpo" and loss.h == "ba":      # λ = 0 (SBA's KLIEP branch): −z ≤ max(−z, 0)
        z = _margin(loss, c, r, rc, rr)
        lam = torch.as_tensor(loss.hp("lam", c), dtype=z.dtype)
        return torch.maximum(-(lam + 1) * z, lam * z)
    if name == "tan_principled":
        z = _margin(loss, c, r, rc, rr)
        return -(z / extras["score_gap"] if loss.zeta == "reward_scaled" else z)
    if name == "fdpo" and loss.divergence in ("forward_kl", "alpha"):
        rate = loss.alpha if loss.divergence == "alpha" else 1.0
        return torch.maximum(-rate * (c - rc), -rate * (r - rr))
    if name == "alpha_po":
        alpha = loss.hp("alpha", c)
        chosen, rejected = (c / extras["chosen_len"], r / extras["rejected_len"]) if loss.length_normalized else (c, r)
        return torch.maximum(-alpha * chosen, -alpha * rejected)
    return None


def _extras(loss, count, dtype):
    values = {"score_gap": SCORE_GAPS, "chosen_reward": REWARDS, "rejected_reward": REWARDS[::-1],
              "chosen_win_prob": WIN_PROBS, "rejected_win_prob": WIN_PROBS[::-1], "pair_win_prob": WIN_PROBS,
              "chosen_len": LENGTHS, "rejected_len": LENGTHS[::-1]}
    return {name: torch.tensor(values[name], dtype=dtype)[torch.arange(count) % len(values[name])].expand(3, -1)
            for name in loss.needs}


def _grid(dtype):
    tiny = -1e-30 if dtype == torch.float32 else -1e-300      # float32's −1e-300 is −0
    log_probs = [tiny if v == -1e-300 else v for v in LOG_PROBS]
    table = torch.tensor(list(itertools.product(log_probs, repeat=4)), dtype=dtype).T
    return [row.expand(3, -1) for row in table]                # B = 3 runs (per-run λ, α variants)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name, kwargs", VARIANTS, ids=[f"{n}{k or ''}" for n, k in VARIANTS])
def test_losses_are_finite_at_extreme_inputs(name, kwargs, dtype):
    loss = tb.losses.make(name, **kwargs)
    c, r, rc, rr = _grid(dtype)
    extras = _extras(loss, c.shape[1], dtype)
    state = {}
    if loss.stateful:
        inputs = dict(chosen_logp=c, rejected_logp=r, ref_chosen_logp=rc, ref_rejected_logp=rr, **extras)
        state = {"state": loss.update_state(loss.init_state(3, c), inputs, torch.full_like(c, 1 / c.shape[1]))}
    chosen, rejected = c.clone().requires_grad_(True), r.clone().requires_grad_(True)
    value = loss(chosen, rejected, rc, rr, **extras, **state)
    auto = torch.autograd.grad(value.sum(), (chosen, rejected), allow_unused=True, materialize_grads=True)
    closed = loss.input_grads(c, r, rc, rr, **extras, **state)
    value = value.detach()

    for what, tensor in [("value", value), ("input_grads", closed[0]), ("input_grads", closed[1])]:
        assert not tensor.isnan().any(), f"{what} is NaN at {int(tensor.isnan().sum())} points"
    # autograd backpropagates an overflowed value through masks (where, maximum): inf·0 = NaN
    # there is torch's chain rule, not the loss; where the value is finite it must be NaN-free
    for grad in auto:
        assert not grad[torch.isfinite(value)].isnan().any()

    exponent = _largest_exponent(loss, c, r, rc, rr, extras)
    must_be_finite = torch.ones_like(value, dtype=torch.bool)
    if exponent is not None:
        must_be_finite = exponent.expand_as(value) < math.log(torch.finfo(dtype).max) - SLACK
        assert must_be_finite.any()
    for tensor in (value, *closed, *auto):
        assert torch.isfinite(tensor[must_be_finite]).all(), int((~torch.isfinite(tensor[must_be_finite])).sum())

    if dtype == torch.float64:
        # the two gradients agree where both are finite: float64 rounding of two formulas, amplified
        # ≤ 1e4 by exponents of size ≤ 1e4 (rtol); products of underflowing factors below 1e-250 (atol)
        for fast, slow in zip(closed, auto, strict=True):
            both = torch.isfinite(fast) & torch.isfinite(slow)
            np.testing.assert_allclose(fast[both].numpy(), slow[both].numpy(), rtol=1e-9, atol=1e-250)


def test_every_registered_loss_is_swept():
    assert {name for name, _ in VARIANTS} | set(TOKEN_LOSSES) == set(tb.losses.names())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", TOKEN_LOSSES)
def test_token_losses_are_finite_at_extreme_policies(name, dtype):
    """Token-level losses read per-token log-ratios of a SequenceSpace policy: policies whose
    sequence log-probs are drawn from {0, −30, −690, −1e4} (normalised) give token log-ratios up
    to ±1e4; values and autograd through the policy table (they have no closed-form input_grads:
    their gradient flows through the per-token views) are finite."""
    prob = tb.Problem.random(tb.SequenceSpace(2, 3), prompts=1, seed=1, pair_dist="uniform")
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.choice([0.0, -30.0, -690.0, -1e4], size=(6, 1, prob.Y)), dtype=dtype)
    table = torch.log_softmax(logits, -1).requires_grad_(True)
    loss, pairs = tb.losses.make(name), tb.population(prob)
    inputs = record_inputs(loss, table, pairs)
    value = loss(**inputs)
    (grad,) = torch.autograd.grad((pairs.weight.to(dtype) * value).sum(), table)
    for tensor in (value.detach(), grad):
        assert torch.isfinite(tensor).all(), int((~torch.isfinite(tensor)).sum())


@pytest.mark.parametrize("name", ["orpo", "asft"])
def test_odds_terms_at_probability_one(name):
    """A rejected response with probability 1 has infinite odds: ORPO's −log σ(log-odds gap) and
    ASFT's −log(1 − π_l) are +inf there (the correct limit), never NaN; a chosen response with
    probability 1 gives a finite loss."""
    loss = tb.losses.make(name)
    zero, other = torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1), -0.5, dtype=torch.float64)
    one = torch.ones(1, 1, dtype=torch.float64)
    lengths = dict(chosen_len=one, rejected_len=one)
    assert float(loss(other, zero, zero, zero, **lengths)) == math.inf
    assert math.isfinite(float(loss(zero, other, zero, zero, **lengths)))


# ------------------------------------------------------------------------------ the primitives
def test_log1mexp_against_mpmath_and_its_derivative_near_zero():
    points = [-1e-300, -1e-20, -1e-8, -0.5, -math.log(2.0), -1.0, -40.0, -1e4]
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    with mpmath.workdps(50):
        expected = [float(mpmath.log(-mpmath.expm1(mpmath.mpf(v)))) for v in points]
        slope = [float(-1 / mpmath.expm1(-mpmath.mpf(v))) for v in points]    # d/dx log(1 − e^x)
    np.testing.assert_allclose(log1mexp(x).detach().numpy(), expected, rtol=4e-16, atol=0)
    (grad,) = torch.autograd.grad(log1mexp(x).sum(), x)
    np.testing.assert_allclose(grad.numpy(), slope, rtol=4e-16, atol=0)


def test_exp_difference_against_mpmath_and_at_ties():
    x = torch.tensor([1e4, 1e4, 3.0, 0.0, -1e4, 700.0, 2.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1e4, 1e4 - 1.0, 1.0, 2.0, -1e4, 699.0, 2.0], dtype=torch.float64, requires_grad=True)
    got = exp_difference(x, y, log_scale=math.log(0.5))
    with mpmath.workdps(50):
        exact = [float(mpmath.mpf(0.5) * (mpmath.exp(a) - mpmath.exp(b))) for a, b in zip(x.tolist(), y.tolist(),
                                                                                          strict=True)]
    assert got[1] == math.inf and exact[1] == math.inf          # 0.5·e^{1e4}(1 − 1/e) is beyond float64
    # a few ulps of the exponent max(x, y) ≤ 700: relative error ≤ 700·2^−52·4
    np.testing.assert_allclose(got.detach().numpy(), exact, rtol=700 * 2 ** -50, atol=0)
    grad_x, grad_y = torch.autograd.grad(got[2:].sum(), (x, y))   # e^{log_scale}·(e^x, −e^y), ties included
    np.testing.assert_allclose(grad_x[2:].numpy(), 0.5 * np.exp(x[2:].detach().numpy()), rtol=700 * 2 ** -50)
    np.testing.assert_allclose(grad_y[2:].numpy(), -0.5 * np.exp(y[2:].detach().numpy()), rtol=700 * 2 ** -50)
    capped = exp_difference(x[2:4], y[2:4], cap=2.0)           # e^3 − e > 2 is capped; e^0 − e^2 < 0 is not
    np.testing.assert_allclose(capped.detach().numpy(), [2.0, 1 - math.exp(2)], rtol=1e-15)


def test_log_sigmoid_at_extremes():
    t = torch.tensor([-1e4, -40.0, 0.0, 40.0, 1e4], dtype=torch.float64)
    expected = [-1e4, -40 - math.log1p(math.exp(-40)), -math.log(2), -math.log1p(math.exp(-40)), 0.0]
    np.testing.assert_allclose(log_sigmoid(t).numpy(), expected, rtol=1e-15, atol=0)


def test_bisect_reaches_the_root_to_float64_resolution():
    lo, hi = torch.zeros(3, dtype=torch.float64), torch.tensor([2.0, 10.0, 1e4], dtype=torch.float64)
    target = torch.tensor([math.sqrt(2.0), math.pi, 1234.5], dtype=torch.float64)
    root = bisect(lambda x: x * x - target * target, lo, hi)
    # a 200-halving bracket ends within one ulp of the root: bracket/2^201 is far below it
    np.testing.assert_allclose(root.numpy(), target.numpy(), rtol=2 ** -52, atol=0)
