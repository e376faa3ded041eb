"""simpo, sigmoid_norm, r_dpo, orpo, cpo, alpha_po, alpha_dpo, asft, discopop, tan_principled:
per-record values, TRL cross-checks, closed-form targets, state, validation, per-run broadcasting.

Every expected number is computed here independently: NumPy formulas, hand arithmetic, SciPy roots
and minimisers, or independently derived E1 numbers (E1: docs/conventions.md).
"""
import math

import numpy as np
import pytest
import scipy.optimize as so
import torch
from conftest import E1_PISTAR, E1_REF, E1_REWARD, assert_exact_minimiser, e1_problem, newton_minimiser

import toybench as tb

RNG = np.random.default_rng(7)
B, N = 3, 6
POLICY = -RNG.uniform(0.2, 6.0, size=(2, B, N))          # chosen, rejected log-probs (< 0)
REF = -RNG.uniform(0.2, 6.0, size=(2, B, N))             # reference log-probs
LENGTHS = RNG.integers(1, 6, size=(2, B, N)).astype(float)
GAP = RNG.choice([-1.0, 1.0], size=(B, N)) * RNG.uniform(0.3, 2.0, size=(B, N))
STATE = {"mean": np.array([0.3, -0.2, 0.0]), "std": np.array([0.7, 1.4, 0.0])}
LENGTHS_14 = [1.0, 2.0, 3.0, 4.0]
UNIT_LENGTHS = [1.0, 1.0, 1.0, 1.0]


def softplus(t):
    return np.logaddexp(0.0, t)


def sigmoid(t):
    return 1 / (1 + np.exp(-t))


def tv(p, q):
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum()


def alpha_reward(alpha, score):
    return score if alpha == 0 else (1 - np.exp(-alpha * score)) / alpha


def np_alpha_dpo(c, r, rc, rr, lc, lr, beta, gamma, alpha, mean, std):
    policy = c / lc - r / lr
    gap = policy - (rc / lc - rr / lr)
    zeta = np.where(std[:, None] > 0, (gap - mean[:, None]) / np.where(std > 0, std, 1.0)[:, None], 0.0)
    return softplus(-(beta * policy - gamma - alpha * beta * zeta))


# name, kwargs, numpy per-record loss f(c, r, rc, rr, lc, lr, gap)
NUMPY_LOSSES = {
    "simpo": (dict(beta=2.0, gamma=0.5),
              lambda c, r, rc, rr, lc, lr: softplus(-(2.0 * (c / lc - r / lr) - 0.5))),
    "sigmoid_norm": (dict(beta=0.7),
                     lambda c, r, rc, rr, lc, lr: softplus(-0.7 * ((c - rc) / lc - (r - rr) / lr))),
    "r_dpo": (dict(beta=0.5, alpha=0.3),
              lambda c, r, rc, rr, lc, lr: softplus(-(0.5 * ((c - rc) - (r - rr)) + 0.3 * (lc - lr)))),
    "orpo": (dict(lam=0.2),
             lambda c, r, rc, rr, lc, lr: -c / lc + 0.2 * softplus(
                 -((c / lc - np.log(-np.expm1(c / lc))) - (r / lr - np.log(-np.expm1(r / lr)))))),
    "cpo": (dict(beta=0.3, alpha=0.8),
            lambda c, r, rc, rr, lc, lr: softplus(-0.3 * (c - r)) - 0.8 * c / lc),
    "alpha_po": (dict(beta=0.4, alpha=0.25),
                 lambda c, r, rc, rr, lc, lr: softplus(-0.4 * (alpha_reward(0.25, c) - alpha_reward(0.25, r)))),
    "asft": (dict(lam=0.6),
             lambda c, r, rc, rr, lc, lr: -1.6 * c / lc - 0.6 * np.log(-np.expm1(r / lr))),
    "discopop": (dict(beta=0.4, tau=0.05),
                 lambda c, r, rc, rr, lc, lr: (lambda z: (1 - sigmoid(z / 0.05)) * softplus(-z)
                                               + sigmoid(z / 0.05) * np.exp(-z))(0.4 * ((c - rc) - (r - rr)))),
    "tan_principled": (dict(beta=0.4),
                       lambda c, r, rc, rr, lc, lr: (lambda z: -z * np.exp(-z))(0.4 * ((c - rc) - (r - rr)))),
}
OPTION_LOSSES = {
    "alpha_po_length_nll": ("alpha_po", dict(beta=1.5, alpha=0.5, gamma=0.3, length_normalized=True, nll_weight=0.4),
                            lambda c, r, rc, rr, lc, lr, gap: softplus(
                                -(1.5 * (alpha_reward(0.5, c / lc) - alpha_reward(0.5, r / lr)) - 0.3)) - 0.4 * c / lc),
    "alpha_po_negative_alpha": ("alpha_po", dict(beta=0.4, alpha=-0.5),
                                lambda c, r, rc, rr, lc, lr, gap: softplus(
                                    -0.4 * (alpha_reward(-0.5, c) - alpha_reward(-0.5, r)))),
    "tan_reward_scaled": ("tan_principled", dict(beta=0.4, zeta="reward_scaled"),
                          lambda c, r, rc, rr, lc, lr, gap: (lambda z: -z * np.exp(-z))(
                              0.4 * ((c - rc) - (r - rr)) / gap)),
}


def torch_inputs(loss):
    """The loss's arguments at the random points (float64 tensors)."""
    args = [torch.tensor(POLICY[0]), torch.tensor(POLICY[1]), torch.tensor(REF[0]), torch.tensor(REF[1])]
    extra = {"chosen_len": torch.tensor(LENGTHS[0]), "rejected_len": torch.tensor(LENGTHS[1]),
             "score_gap": torch.tensor(GAP)}
    kwargs = {name: extra[name] for name in loss.needs}
    if loss.stateful:
        kwargs["state"] = {key: torch.tensor(value) for key, value in STATE.items()}
    return args, kwargs


def numpy_args():
    return POLICY[0], POLICY[1], REF[0], REF[1], LENGTHS[0], LENGTHS[1]


@pytest.mark.parametrize("name", sorted(NUMPY_LOSSES))
def test_per_record_against_numpy(name):
    kwargs, reference = NUMPY_LOSSES[name]
    loss = tb.losses.make(name, **kwargs)
    args, extra = torch_inputs(loss)
    got = loss(*args, **extra).numpy()
    assert got.shape == (B, N)
    np.testing.assert_allclose(got, reference(*numpy_args()), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("label", sorted(OPTION_LOSSES))
def test_per_record_options_against_numpy(label):
    name, kwargs, reference = OPTION_LOSSES[label]
    loss = tb.losses.make(name, **kwargs)
    args, extra = torch_inputs(loss)
    np.testing.assert_allclose(loss(*args, **extra).numpy(), reference(*numpy_args(), GAP), rtol=1e-12, atol=1e-14)


def test_alpha_dpo_per_record_against_numpy():
    loss = tb.losses.make("alpha_dpo", beta=2.5, gamma=1.5, alpha=0.2)
    args, extra = torch_inputs(loss)
    expected = np_alpha_dpo(*numpy_args(), 2.5, 1.5, 0.2, STATE["mean"], STATE["std"])
    np.testing.assert_allclose(loss(*args, **extra).numpy(), expected, rtol=1e-12, atol=1e-14)


def one(*values):
    return [torch.tensor([[v]], dtype=torch.float64) for v in values]


def test_hand_computed_values():
    """One record: ℓ_w = −2, ℓ_l = −6, ℓ^ref_w = −3, ℓ^ref_l = −4, |y_w| = 2, |y_l| = 3."""
    args = one(-2.0, -6.0, -3.0, -4.0)
    lens = dict(chosen_len=torch.tensor([[2.0]]), rejected_len=torch.tensor([[3.0]]))
    value = lambda name, **kw: tb.losses.make(name, **kw)(*args, **lens).item()  # noqa: E731
    # simpo β=2, γ=0: ℓ̄_w − ℓ̄_l = −1 + 2 = 1 → sp(−2)
    assert value("simpo", beta=2.0, gamma=0.0) == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-14)
    # sigmoid_norm β=1: g_w/2 − g_l/3 = 0.5 + 2/3 = 7/6 → sp(−7/6)
    assert value("sigmoid_norm", beta=1.0) == pytest.approx(math.log1p(math.exp(-7 / 6)), rel=1e-14)
    # r_dpo β=1, α=0.5: Δ = 1 − (−2) = 3; 3 + 0.5·(2 − 3) = 2.5 → sp(−2.5)
    assert value("r_dpo", beta=1.0, alpha=0.5) == pytest.approx(math.log1p(math.exp(-2.5)), rel=1e-14)
    # cpo β=1, α=1: sp(−(−2 + 6)) + 1 = log(1 + e^{−4}) + 1
    assert value("cpo", beta=1.0, alpha=1.0) == pytest.approx(math.log1p(math.exp(-4.0)) + 1.0, rel=1e-14)
    # asft λ=1: −2·(−1) − log(1 − e^{−2})
    assert value("asft", lam=1.0) == pytest.approx(2.0 - math.log(1 - math.exp(-2.0)), rel=1e-14)
    # orpo λ=1: P_w = e^{−1}, P_l = e^{−2};
    # odds ratio (e^{-1}/(1 − e^{-1}))/(e^{-2}/(1 − e^{-2})) = e(1 − e^{-2})/(1 − e^{-1})
    ratio = math.e * (1 - math.exp(-2)) / (1 - math.exp(-1))
    assert value("orpo", lam=1.0) == pytest.approx(1.0 + math.log(1 + 1 / ratio), rel=1e-14)
    # alpha_po α=1, β=1 (summed): a = 1 − 1/P: a_w = 1 − e², a_l = 1 − e⁶ → sp(−(e⁶ − e²))
    assert tb.losses.make("alpha_po", beta=1.0, alpha=1.0)(*args).item() == pytest.approx(
        math.log1p(math.exp(-(math.exp(6) - math.exp(2)))), rel=1e-12)
    # discopop at Δ = 0: m = ½ → ½·log 2 + ½
    zero = one(-1.0, -1.0, -1.0, -1.0)
    assert tb.losses.make("discopop", beta=1.0)(*zero).item() == pytest.approx(0.5 * math.log(2) + 0.5, rel=1e-14)
    # tan_principled at z = βΔ = 1: −1·e^{−1}; reward-scaled with gap 3 and βΔ = 3 likewise
    assert tb.losses.make("tan_principled", beta=1 / 3)(*args).item() == pytest.approx(-math.exp(-1), rel=1e-14)
    scaled = tb.losses.make("tan_principled", beta=1.0, zeta="reward_scaled")
    assert scaled(*args, score_gap=torch.tensor([[3.0]])).item() == pytest.approx(-math.exp(-1), rel=1e-14)


def test_alpha_dpo_hand_value():
    """β = 1, γ = 0.5, α = 1; Δ̄_π = −1 + 2 = 1, M = 1 − (−1.5 + 4/3) = 7/6, m̂ = 1/6, ŝ = 2: ζ = ½."""
    loss = tb.losses.make("alpha_dpo", beta=1.0, gamma=0.5, alpha=1.0)
    state = {"mean": torch.tensor([1 / 6], dtype=torch.float64), "std": torch.tensor([2.0], dtype=torch.float64)}
    got = loss(*one(-2.0, -6.0, -3.0, -4.0), chosen_len=torch.tensor([[2.0]]), rejected_len=torch.tensor([[3.0]]),
               state=state).item()
    assert got == pytest.approx(math.log1p(math.exp(-(1.0 - 0.5 - 0.5))), rel=1e-14)   # sp(0) = log 2


# ------------------------------------------------------------------------------------ TRL
def log_sigmoid(t):
    return -math.log1p(math.exp(-t))


def test_trl_cpo_trainer_formulas():
    """TRL v1.9.0 CPOTrainer (``trl/experimental/cpo/cpo_trainer.py``): score ℓ summed for
    ``sigmoid``, token mean for ``simpo``; ``alpha`` ≠ 0: reward (1 − p^{−α})/α, p = exp(score);
    loss −(1−ε)logσ(β·logits) − ε logσ(−β·logits), ``simpo``: logits − γ/β; total = loss +
    ``cpo_alpha``·CrossEntropy(chosen tokens) (token mean). Written from token log-probs."""
    chosen_tokens, rejected_tokens = [-0.4, -1.1, -0.2], [-0.9, -1.7, -0.6, -1.2]
    ref_chosen, ref_rejected = -1.3, -4.8       # unused by the reference-free CPO trainer
    summed_w, summed_l = sum(chosen_tokens), sum(rejected_tokens)
    mean_w, mean_l = summed_w / 3, summed_l / 4
    nll = -sum(chosen_tokens) / len(chosen_tokens)
    args = one(summed_w, summed_l, ref_chosen, ref_rejected)
    lens = dict(chosen_len=torch.tensor([[3.0]]), rejected_len=torch.tensor([[4.0]]))
    beta, gamma, cpo_alpha, alpha = 0.1, 0.5, 1.0, 0.3
    # loss_type="sigmoid", label_smoothing=0, cpo_alpha=1.0 (TRL defaults)
    sigmoid_trl = -log_sigmoid(beta * (summed_w - summed_l)) + cpo_alpha * nll
    assert tb.losses.make("cpo", beta=beta, alpha=cpo_alpha)(*args, **lens).item() == pytest.approx(sigmoid_trl, rel=1e-12)
    # loss_type="simpo", simpo_gamma=0.5, cpo_alpha=0 (SimPO through the CPO trainer)
    simpo_trl = -log_sigmoid(beta * (mean_w - mean_l - gamma / beta))
    assert tb.losses.make("simpo", beta=beta, gamma=gamma)(*args, **lens).item() == pytest.approx(simpo_trl, rel=1e-12)
    # AlphaPO: loss_type="sigmoid", alpha=0.3, cpo_alpha=1.0
    reward = lambda score: (1 - math.exp(score) ** (-alpha)) / alpha  # noqa: E731
    alphapo_trl = -log_sigmoid(beta * (reward(summed_w) - reward(summed_l))) + cpo_alpha * nll
    ours = tb.losses.make("alpha_po", beta=beta, alpha=alpha, nll_weight=cpo_alpha)
    assert ours(*args, **lens).item() == pytest.approx(alphapo_trl, rel=1e-12)
    # AlphaPO: loss_type="simpo", alpha=0.3, simpo_gamma=0.5, cpo_alpha=0
    alphapo_simpo_trl = -log_sigmoid(beta * (reward(mean_w) - reward(mean_l) - gamma / beta))
    ours = tb.losses.make("alpha_po", beta=beta, alpha=alpha, gamma=gamma, length_normalized=True)
    assert ours(*args, **lens).item() == pytest.approx(alphapo_simpo_trl, rel=1e-12)


def test_trl_orpo_trainer_formula():
    """TRL v1.9.0 ORPOTrainer: log_odds = (ℓ̄_w − ℓ̄_l) − (log1p(−exp ℓ̄_w) − log1p(−exp ℓ̄_l));
    loss = NLL(chosen, token mean) − β·logσ(log_odds), β = 0.1 (the paper's λ)."""
    chosen_tokens, rejected_tokens = [-0.3, -0.8], [-1.4, -0.5, -2.1]
    mean_w, mean_l = sum(chosen_tokens) / 2, sum(rejected_tokens) / 3
    log_odds = (mean_w - mean_l) - (math.log1p(-math.exp(mean_w)) - math.log1p(-math.exp(mean_l)))
    trl = -mean_w - 0.1 * log_sigmoid(log_odds)
    got = tb.losses.make("orpo", lam=0.1)(*one(sum(chosen_tokens), sum(rejected_tokens), -9.0, -9.0),
                                          chosen_len=torch.tensor([[2.0]]), rejected_len=torch.tensor([[3.0]]))
    assert got.item() == pytest.approx(trl, rel=1e-12)


def test_trl_dpo_trainer_length_and_discopop():
    """TRL v1.9.0 DPOTrainer with ``f_divergence_type="reverse_kl"`` (S = g): ``sigmoid_norm``
    −logσ(β(S_w/n_w − S_l/n_l)); ``ipo`` (S_w/n_w − S_l/n_l − 1/(2β))²; ``discopop``
    m = σ(β·d/τ), (1 − m)(−logσ(β·d)) + m·e^{−β·d}, d = S_w − S_l, τ = ``discopop_tau`` 0.05."""
    pc, pr, rc, rr, nw, nl, beta = -7.5, -9.0, -8.1, -8.4, 5.0, 3.0, 0.1
    s_w, s_l = pc - rc, pr - rr
    args = one(pc, pr, rc, rr)
    lens = dict(chosen_len=torch.tensor([[nw]]), rejected_len=torch.tensor([[nl]]))
    normed = s_w / nw - s_l / nl
    assert tb.losses.make("sigmoid_norm", beta=beta)(*args, **lens).item() == pytest.approx(
        -log_sigmoid(beta * normed), rel=1e-12)
    assert tb.losses.make("ipo", beta=beta, length_normalized=True)(*args, **lens).item() == pytest.approx(
        (normed - 1 / (2 * beta)) ** 2, rel=1e-12)
    d = s_w - s_l
    mix = 1 / (1 + math.exp(-beta * d / 0.05))
    discopop_trl = (1 - mix) * -log_sigmoid(beta * d) + mix * math.exp(-beta * d)
    assert tb.losses.make("discopop", beta=beta)(*args).item() == pytest.approx(discopop_trl, rel=1e-12)


# ------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("name, kwargs", [
    ("simpo", dict(beta=2.0, gamma=0.5)), ("sigmoid_norm", dict(beta=0.7)), ("r_dpo", dict(beta=0.5, alpha=0.3)),
    ("discopop", dict(beta=0.4)), ("tan_principled", dict(beta=0.4)),
    ("tan_principled", dict(beta=0.4, zeta="reward_scaled")), ("orpo", dict(lam=0.3)),
    ("cpo", dict(beta=0.7, alpha=0.4)), ("asft", dict(lam=0.8)),
    ("alpha_po", dict(beta=0.6, alpha=0.3)), ("alpha_po", dict(beta=0.6, alpha=0.3, gamma=0.2, nll_weight=0.5)),
    ("alpha_po", dict(beta=0.6, alpha=-0.2, length_normalized=True)),
    ("alpha_po", dict(beta=0.6, alpha=torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64), length_normalized=True)),
])
def test_closed_form_grads_match_autograd(name, kwargs):
    loss = tb.losses.make(name, **kwargs)
    args, extra = torch_inputs(loss)
    fast = loss.input_grads(*args, **extra)
    slow = tb.losses.Loss.input_grads(loss, *args, **extra)
    for f, s in zip(fast, slow, strict=False):
        torch.testing.assert_close(f, s, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["orpo", "asft"])
def test_odds_losses_closed_form_grads_at_extreme_probabilities(name):
    """Mean log-probs near 0 (P → 1, where the odds blow up), at −log 2 (log1mexp's branch point)
    and near −700: the closed form equals autograd; [B] λ with a zero."""
    loss = tb.losses.make(name, lam=torch.tensor([0.0, 0.25, 4.0], dtype=torch.float64))
    chosen = torch.tensor([[-1e-9, -math.log(2.0), -3.0, -700.0]] * 3, dtype=torch.float64)
    rejected = torch.tensor([[-2.0, -1e-6, -math.log(2.0), -650.0]] * 3, dtype=torch.float64)
    lengths = {"chosen_len": torch.tensor([[1.0, 1.0, 2.0, 3.0]], dtype=torch.float64),
               "rejected_len": torch.tensor([[1.0, 1.0, 1.0, 5.0]], dtype=torch.float64)}
    args = (chosen, rejected, torch.zeros_like(chosen), torch.zeros_like(chosen))
    for fast, slow in zip(loss.input_grads(*args, **lengths), tb.losses.Loss.input_grads(loss, *args, **lengths), strict=False):
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-14)


def test_alpha_po_zero_alpha_run_has_finite_gradient():
    """A [B] α holding 0 takes the score itself, and the unused branch cannot overflow."""
    loss = tb.losses.make("alpha_po", beta=1.0, alpha=torch.tensor([0.0, 0.5], dtype=torch.float32))
    chosen = torch.tensor([[-150.0], [-3.0]], requires_grad=True)
    value = loss(chosen, torch.tensor([[-200.0], [-20.0]]), torch.zeros(2, 1), torch.zeros(2, 1))
    (grad,) = torch.autograd.grad(value.sum(), chosen)
    assert torch.isfinite(grad).all()
    assert value[0, 0].item() == pytest.approx(math.log1p(math.exp(-50.0)), rel=1e-5)   # float32


# ------------------------------------------------------------------------------ targets
def numpy_length_tilt(base, lengths, beta_reward):
    """log π = base + |y|(r/β + c) with Σπ = 1 (SciPy brentq on c)."""
    def total(c):
        return np.logaddexp.reduce(base + lengths * (beta_reward + c))
    c = so.brentq(total, -200, 200, xtol=1e-15, rtol=1e-15)
    return base + lengths * (beta_reward + c)


@pytest.mark.parametrize("law", ["uniform", "ref", "chain"])
def test_simpo_gamma0_target(law):
    lengths = np.array(LENGTHS_14)
    for beta in (0.5, 1.0, 2.0):
        expected = numpy_length_tilt(np.zeros(4), lengths, E1_REWARD / beta)
        got = tb.losses.make("simpo", beta=beta, gamma=0.0).target(e1_problem(law, lengths=LENGTHS_14))
        # brentq's c: xtol 1e-15 + 4·eps·|c|, i.e. float64 resolution; the rest is rounding
        np.testing.assert_allclose(got[0].numpy(), expected, rtol=1e-12, atol=1e-13)
    e1 = tb.losses.make("simpo", beta=1.0, gamma=0.0).target(e1_problem(law, lengths=LENGTHS_14)).exp()[0].numpy()
    np.testing.assert_allclose(e1, [0.0489, 0.0065, 0.0106, 0.9340], atol=5e-5)     # derived here, 4 digits
    unit = tb.losses.make("simpo", beta=1.0, gamma=0.0).target(e1_problem(law, lengths=UNIT_LENGTHS)).exp()[0]
    np.testing.assert_allclose(unit.numpy(), np.exp(E1_REWARD) / np.exp(E1_REWARD).sum(), rtol=1e-12)


def test_simpo_gamma_positive_has_no_target():
    prob = e1_problem(lengths=UNIT_LENGTHS)
    assert tb.losses.make("simpo", beta=1.0, gamma=0.5).target(prob) is None
    assert tb.losses.make("simpo", beta=1.0, gamma=0.0).target(prob, noise=0.1) is None
    assert tb.losses.make("simpo", beta=1.0, gamma=0.0).target(e1_problem()) is None      # no lengths


def test_sigmoid_norm_target():
    lengths = np.array(LENGTHS_14)
    for beta in (0.3, 1.0):
        expected = numpy_length_tilt(np.log(E1_REF), lengths, E1_REWARD / beta)
        got = tb.losses.make("sigmoid_norm", beta=beta).target(e1_problem("ref", lengths=LENGTHS_14))
        np.testing.assert_allclose(got[0].numpy(), expected, rtol=1e-12, atol=1e-13)
    e1 = tb.losses.make("sigmoid_norm", beta=1.0).target(e1_problem(lengths=LENGTHS_14)).exp()[0].numpy()
    assert tv(e1, E1_PISTAR) == pytest.approx(0.418, abs=1e-3)                        # derived here


def test_r_dpo_target():
    lengths = np.array(LENGTHS_14)
    for beta, alpha in ((1.0, 0.3), (0.5, 1.0)):
        logits = np.log(E1_REF) + (E1_REWARD - alpha * lengths) / beta
        expected = logits - np.logaddexp.reduce(logits)
        got = tb.losses.make("r_dpo", beta=beta, alpha=alpha).target(e1_problem("uniform", lengths=LENGTHS_14))
        np.testing.assert_allclose(got[0].numpy(), expected, rtol=1e-12, atol=1e-13)


def test_length_targets_keep_components_at_reference_mass():
    """Two comparison components {0, 1} and {2, 3}: each keeps its π_ref mass (docs/conventions.md, what solve returns) and the
    length tilt holds inside it (SciPy brentq per component)."""
    table = torch.zeros(1, 4, 4, dtype=torch.float64)
    table[0, 0, 1] = table[0, 2, 3] = 1.0
    prob = e1_problem(table, lengths=LENGTHS_14)
    got = tb.losses.make("simpo", beta=1.0, gamma=0.0).target(prob)[0].numpy()
    for members in ([0, 1], [2, 3]):
        lengths, reward = np.array(LENGTHS_14)[members], E1_REWARD[members]
        mass = np.log(E1_REF[members].sum())
        c = so.brentq(lambda c: np.logaddexp.reduce(lengths * (reward + c)) - mass, -100, 100, xtol=1e-15, rtol=1e-15)
        np.testing.assert_allclose(got[members], lengths * (reward + c), rtol=1e-12)   # brentq at xtol 1e-15


def numpy_alpha_target(alpha, beta, lengths):
    """π = (1 + α(λ − r)/β)^{−|y|/α}, Σπ = 1, λ ≥ max r (SciPy brentq); α = 0: e^{|y|(r − λ)/β}."""
    def log_pi(lam):
        if alpha == 0:
            return lengths * (E1_REWARD - lam) / beta
        return -lengths / alpha * np.log1p(alpha * (lam - E1_REWARD) / beta)
    lam = so.brentq(lambda lam: np.logaddexp.reduce(log_pi(lam)), E1_REWARD.max(), 100, xtol=1e-15, rtol=1e-15)
    return log_pi(lam)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 2.0])
def test_alpha_po_target(alpha):
    got = tb.losses.make("alpha_po", beta=1.0, alpha=alpha).target(e1_problem("ref"))
    # brentq's λ to xtol 1e-15 + 4·eps·|λ|; 1e-11 covers log1p's conditioning near the pole λ = max r
    np.testing.assert_allclose(got[0].numpy(), numpy_alpha_target(alpha, 1.0, np.ones(4)), rtol=1e-11, atol=1e-12)
    normed = tb.losses.make("alpha_po", beta=0.7, alpha=alpha, length_normalized=True)
    got = normed.target(e1_problem(lengths=LENGTHS_14))
    np.testing.assert_allclose(got[0].numpy(), numpy_alpha_target(alpha, 0.7, np.array(LENGTHS_14)),
                               rtol=1e-11, atol=1e-12)


def test_alpha_po_target_is_fdpo_alpha_target_with_constant_reference():
    """Derived: the f-DPO α-target (toybench.optima.fdpo_target, part A's bisection) with
    π_ref replaced by the constant 1."""
    for law in ("uniform", "ref"):
        prob = e1_problem(law)
        for alpha in (0.3, 0.7):
            tempered = tb.optima.fdpo_target(prob, 0.5, "alpha", alpha, ref_logp=torch.zeros(1, 4, dtype=torch.float64))
            got = tb.losses.make("alpha_po", beta=0.5, alpha=alpha).target(prob)
            torch.testing.assert_close(got, tempered, rtol=1e-11, atol=1e-12)


def test_alpha_po_target_outside_closed_form_is_none():
    prob = e1_problem(lengths=UNIT_LENGTHS)
    for kwargs in (dict(alpha=-0.3), dict(alpha=0.3, gamma=0.2), dict(alpha=0.3, nll_weight=1.0)):
        assert tb.losses.make("alpha_po", beta=1.0, **kwargs).target(prob) is None
    assert tb.losses.make("alpha_po", beta=1.0, alpha=0.3).target(prob, noise=0.2) is None


def scipy_asft(lam, prob):
    """Direct minimisation of Σ D(a,b)[−(1+λ)log π_a − λ log(1 − π_b)] over softmax logits: SciPy
    BFGS from two starts for the basin, then Newton's method with the exact Hessian to float64
    rounding (|∇|/λ ≤ 1e-10, asserted)."""
    records = torch.tensor(tb.population(prob).record_table()[0, 0].numpy())

    def objective(s):
        logp = torch.log_softmax(s, -1)
        value = records * (-(1 + lam) * logp[:, None] - lam * torch.log(-torch.expm1(logp))[None, :])
        return value.sum()

    best = min((so.minimize(lambda s: float(objective(torch.tensor(s))), x0, method="BFGS")
                for x0 in (np.log(E1_REF), np.zeros(4))), key=lambda res: res.fun)
    polished, grad_norm, curvature = newton_minimiser(objective, best.x)
    assert_exact_minimiser(grad_norm, curvature)
    return torch.softmax(polished, -1).numpy()


@pytest.mark.parametrize("law", ["uniform", "ref", "chain"])
def test_asft_target_is_kkt_minimiser(law):
    prob = e1_problem(law, lengths=UNIT_LENGTHS)
    for lam in (0.3, 1.0):
        got = tb.losses.make("asft", lam=lam).target(prob).exp()[0].numpy()
        assert got.sum() == pytest.approx(1.0, abs=1e-13)
        # reference within 1e-10; the target's ν is a 200-halving bisection (float64 resolution)
        assert tv(got, scipy_asft(lam, prob)) < 1e-9
    if law != "chain":   # derived here: E1, λ = 1: TV 0.062 (W_u), 0.261 (W_s) from π*_β
        expected = {"uniform": 0.062, "ref": 0.261}[law]
        got = tb.losses.make("asft", lam=1.0).target(prob).exp()[0].numpy()
        assert tv(got, E1_PISTAR) == pytest.approx(expected, abs=1e-3)


def test_asft_target_boundary_and_none():
    """Deterministic preferences y0 ≻ y1 ≻ y2: y2 is never chosen and gets no mass; the KKT
    stationarity −a/π + b/(1 − π) = −ν holds on the support (ν from y0)."""
    order = torch.tensor([[[0.5, 1.0, 1.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.5]]], dtype=torch.float64)
    prob = tb.Problem(tb.FlatSpace(3, lengths=[1.0, 1.0, 1.0]), torch.full((1, 3), -math.log(3.0), dtype=torch.float64),
                      preference=order, pair_dist="uniform")
    pi = tb.losses.make("asft", lam=1.0).target(prob).exp()[0].numpy()
    assert pi[2] == 0.0 and pi.sum() == pytest.approx(1.0, abs=1e-13)
    chosen_rate = np.array([2, 1, 0]) / 3.0 * 2        # a = (1 + λ)·n_w with λ = 1
    rejected_rate = np.array([0, 1, 2]) / 3.0           # b = λ·n_l
    nu = -(-chosen_rate[:2] / pi[:2] + rejected_rate[:2] / (1 - pi[:2]))
    assert nu[0] == pytest.approx(nu[1], rel=1e-10)
    assert rejected_rate[2] >= -nu[0]                   # KKT at π_2 = 0: ∂F/∂π_2 = b_2 ≥ −ν
    assert tb.losses.make("asft").target(e1_problem(lengths=LENGTHS_14)) is None


def test_no_target_without_reward_or_for_numeric_losses():
    general = tb.Problem(tb.FlatSpace(3, lengths=[1.0, 2.0, 1.0]), torch.full((1, 3), -math.log(3.0), dtype=torch.float64),
                         preference=torch.full((1, 3, 3), 0.5, dtype=torch.float64))
    for name in ("simpo", "sigmoid_norm", "r_dpo", "alpha_po"):
        kwargs = dict(gamma=0.0) if name == "simpo" else {}
        assert tb.losses.make(name, **kwargs).target(general) is None
    for name in ("orpo", "cpo", "alpha_dpo", "discopop", "tan_principled"):
        assert tb.losses.make(name).target(e1_problem(lengths=UNIT_LENGTHS)) is None


# ------------------------------------------------------------------------------ per-run
PER_RUN = [
    ("simpo", "gamma", [0.0, 0.5, 1.0], dict(beta=2.0)),
    ("sigmoid_norm", "beta", [0.1, 1.0, 3.0], {}),
    ("r_dpo", "alpha", [0.0, 0.3, 1.0], dict(beta=0.5)),
    ("orpo", "lam", [0.0, 0.1, 0.5], {}),
    ("cpo", "alpha", [0.0, 1.0, 2.0], dict(beta=0.3)),
    ("alpha_po", "alpha", [0.0, 0.3, -0.5], dict(beta=0.4, nll_weight=0.5)),
    ("alpha_dpo", "alpha", [0.0, 0.2, 1.0], {}),
    ("asft", "lam", [0.0, 1.0, 2.0], {}),
    ("discopop", "tau", [0.05, 0.5, 2.0], dict(beta=0.4)),
    ("tan_principled", "beta", [0.1, 0.4, 1.0], {}),
]


@pytest.mark.parametrize("name, field, values, fixed", PER_RUN)
def test_per_run_hyperparameters_broadcast(name, field, values, fixed):
    batched = tb.losses.make(name, **fixed, **{field: torch.tensor(values, dtype=torch.float64)})
    args, extra = torch_inputs(batched)
    got = batched(*args, **extra)
    for b, value in enumerate(values):
        single = tb.losses.make(name, **fixed, **{field: value})
        one_extra = {key: ({k: v[b:b + 1] for k, v in item.items()} if key == "state" else item[b:b + 1])
                     for key, item in extra.items()}
        torch.testing.assert_close(got[b:b + 1], single(*(x[b:b + 1] for x in args), **one_extra), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name, field, values, fixed, law", [
    ("simpo", "beta", [0.5, 1.0, 2.0], dict(gamma=0.0), "uniform"),
    ("sigmoid_norm", "beta", [0.5, 1.0, 2.0], {}, "ref"),
    ("r_dpo", "alpha", [0.0, 0.3, 1.0], dict(beta=1.0), "uniform"),
    ("alpha_po", "alpha", [0.0, 0.3, 0.7], dict(beta=1.0, length_normalized=True), "ref"),
    ("asft", "lam", [0.5, 1.0, 2.0], {}, "ref"),
])
def test_targets_with_per_run_hyperparameters(name, field, values, fixed, law):
    lengths = UNIT_LENGTHS if name == "asft" else LENGTHS_14
    prob = e1_problem(law, lengths=lengths)
    batched = tb.losses.make(name, **fixed, **{field: torch.tensor(values, dtype=torch.float64)}).target(prob)
    assert batched.shape == (3, 1, 4)
    for b, value in enumerate(values):
        single = tb.losses.make(name, **fixed, **{field: value}).target(prob)
        torch.testing.assert_close(batched[b], single, rtol=1e-12, atol=1e-13)


def test_asft_target_with_per_run_noise():
    prob = e1_problem(lengths=UNIT_LENGTHS)
    loss = tb.losses.make("asft", lam=1.0)
    batched = loss.target(prob, noise=torch.tensor([0.0, 0.2], dtype=torch.float64))
    assert batched.shape == (2, 1, 4)
    torch.testing.assert_close(batched[1], loss.target(prob, noise=0.2), rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------------------ alpha_dpo state
def alpha_dpo_records(runs=2):
    args = [torch.tensor(x[:runs]) for x in (POLICY[0], POLICY[1], REF[0], REF[1])]
    inputs = dict(zip(("chosen_logp", "rejected_logp", "ref_chosen_logp", "ref_rejected_logp"), args, strict=False))
    inputs.update(chosen_len=torch.tensor(LENGTHS[0][:runs]), rejected_len=torch.tensor(LENGTHS[1][:runs]))
    return inputs


def numpy_gap_stats(weight):
    c, r, rc, rr, lc, lr = (x[:2] for x in numpy_args())
    gap = (c / lc - r / lr) - (rc / lc - rr / lr)
    w = np.broadcast_to(weight, gap.shape) / np.broadcast_to(weight, gap.shape).sum(-1, keepdims=True)
    mean = (w * gap).sum(-1)
    return mean, np.sqrt((w * (gap - mean[:, None]) ** 2).sum(-1))


def test_alpha_dpo_state_protocol():
    loss = tb.losses.make("alpha_dpo", ema_decay=0.9)
    inputs = alpha_dpo_records()
    state = loss.init_state(2, inputs["chosen_logp"])
    assert state["mean"].tolist() == [0.0, 0.0] and state["std"].tolist() == [0.0, 0.0]
    weight = RNG.uniform(0.1, 1.0, size=(1, N))
    mean, std = numpy_gap_stats(weight)
    exact = loss.population_state(inputs, torch.tensor(weight))
    np.testing.assert_allclose(exact["mean"].numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(exact["std"].numpy(), std, rtol=1e-12)
    once = loss.update_state(state, inputs, torch.tensor(weight))
    twice = loss.update_state(once, inputs, torch.tensor(weight))
    np.testing.assert_allclose(once["mean"].numpy(), 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(twice["std"].numpy(), 0.9 * 0.1 * std + 0.1 * std, rtol=1e-12)


def test_alpha_dpo_zero_std_gives_zero_zeta_and_detached_statistics():
    """At π_θ = π_ref, M ≡ 0 and ŝ = 0: ζ = 0, so the loss is SimPO's sp(−(βΔ̄_π − γ)). With
    moving statistics ζ is a constant (sg): ∂L/∂ℓ_w = −β·σ(−z)/|y_w|, z = βΔ̄_π − γ − αβζ."""
    loss = tb.losses.make("alpha_dpo", beta=2.5, gamma=1.5, alpha=0.2)
    inputs = alpha_dpo_records()
    inputs["ref_chosen_logp"], inputs["ref_rejected_logp"] = inputs["chosen_logp"], inputs["rejected_logp"]
    state = loss.update_state(loss.init_state(2, inputs["chosen_logp"]), inputs, torch.ones(1, N))
    assert state["std"].tolist() == [0.0, 0.0]
    simpo = tb.losses.make("simpo", beta=2.5, gamma=1.5)
    torch.testing.assert_close(loss(**inputs, state=state), simpo(**inputs), rtol=1e-14, atol=0)
    moving = {"mean": torch.tensor([0.4, -0.3], dtype=torch.float64), "std": torch.tensor([1.1, 0.6], dtype=torch.float64)}
    chosen_grad, _ = loss.input_grads(**inputs, state=moving)
    normalised = inputs["chosen_logp"] / inputs["chosen_len"] - inputs["rejected_logp"] / inputs["rejected_len"]
    zeta = (0.0 - moving["mean"][:, None]) / moving["std"][:, None]          # M = 0 at π_θ = π_ref
    z = 2.5 * normalised - 1.5 - 0.2 * 2.5 * zeta
    torch.testing.assert_close(chosen_grad, -2.5 * torch.sigmoid(-z) / inputs["chosen_len"], rtol=1e-12, atol=1e-14)


def test_alpha_dpo_training_and_solver_agree():
    """Full-batch training updates the EMAs every step (``update_state``); ``solve`` iterates the
    exact population statistics (``population_state``) to a fixed point. Both routes must land on
    the same policy (E1, lengths (1, 2, 3, 4), W_u; float64 Adam, 600 steps reach TV ~5e-12)."""
    from toybench.policies import Tabular
    from toybench.solve import solve
    from toybench.train import train
    prob = e1_problem("uniform", lengths=LENGTHS_14)
    loss = tb.losses.make("alpha_dpo", beta=1.0, gamma=0.5, alpha=0.2)
    policy = Tabular(prob, runs=1, dtype=torch.float64)
    train(policy, loss, tb.population(prob), steps=600, lr=0.1)
    fixed_point = solve(loss, tb.population(prob), restarts=1)
    assert fixed_point.case == "fixed_point"
    assert tv(policy.logp().detach()[0, 0].exp().numpy(), fixed_point.logp[0].exp().numpy()) < 1e-9


def test_alpha_dpo_requires_state():
    loss = tb.losses.make("alpha_dpo")
    args, extra = torch_inputs(loss)
    extra.pop("state")
    with pytest.raises(ValueError, match="state"):
        loss(*args, **extra)


# ------------------------------------------------------------------------------ shapes of φ
def numpy_discopop(z, tau=0.05):
    return (1 - sigmoid(z / tau)) * softplus(-z) + sigmoid(z / tau) * np.exp(-z)


def test_discopop_pair_minimiser_and_init_gradient():
    """Per pair p·φ(z) + (1 − p)·φ(−z) is minimised at 0.782, 1.333, 2.293 for p = 0.6, 0.75, 0.9
    (derived here; not logit p); φ′(0) = 5(1 − log 2) − 0.75 = 0.784 at τ = 0.05 (hand)."""
    for p, expected in ((0.6, 0.782), (0.75, 1.333), (0.9, 2.293)):
        res = so.minimize_scalar(lambda z: p * numpy_discopop(z) + (1 - p) * numpy_discopop(-z),
                                 bounds=(0.2, 4.0), method="bounded", options=dict(xatol=1e-10))
        assert res.x == pytest.approx(expected, abs=1e-3)   # Brent to xatol 1e-10; 3 printed decimals
        assert abs(res.x - math.log(p / (1 - p))) > 0.05
    loss = tb.losses.make("discopop", beta=1.0)
    dphi0 = loss.dphi(torch.zeros(1, 1, dtype=torch.float64)).item()
    assert dphi0 == pytest.approx(5 * (1 - math.log(2)) - 0.75, rel=1e-14)


def test_tan_reward_scaled_minimum_at_reward_gap():
    """ζ = βΔ/(r_w − r_l): both orientations of a pair give the same ζ, minimised at βΔ = r_w − r_l."""
    loss = tb.losses.make("tan_principled", beta=0.5, zeta="reward_scaled")
    for gap in (-1.5, 0.4, 2.0):
        def record(delta):
            args = one(delta, 0.0, 0.0, 0.0)
            return loss(*args, score_gap=torch.tensor([[gap]])).item()
        res = so.minimize_scalar(record, bounds=(-10, 10), method="bounded", options=dict(xatol=1e-10))
        # bounded Brent: |x − x*| ≤ xatol 1e-10 plus √eps·|x*| ≈ 1e-7 where the minimum is flat
        assert 0.5 * res.x == pytest.approx(gap, abs=1e-6)
        mirror = loss(*one(0.0, 1.3, 0.0, 0.0), score_gap=torch.tensor([[-gap]])).item()
        assert mirror == pytest.approx(record(1.3), rel=1e-14)
    with pytest.raises(ValueError, match="score_gap"):
        loss(*one(0.0, 1.0, 0.0, 0.0), score_gap=torch.tensor([[0.0]]))


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("name", ["simpo", "sigmoid_norm", "r_dpo", "orpo", "cpo", "alpha_dpo", "asft"])
def test_length_aware_losses_need_lengths(name):
    loss = tb.losses.make(name)
    with pytest.raises(ValueError, match="lengths"):
        loss.required_inputs(tb.FlatSpace(4))
    assert loss.required_inputs(tb.FlatSpace(4, lengths=LENGTHS_14)) == ("chosen_len", "rejected_len")


def test_option_dependent_inputs():
    assert tb.losses.make("alpha_po").needs == ()
    assert tb.losses.make("alpha_po", length_normalized=True).needs == ("chosen_len", "rejected_len")
    assert tb.losses.make("alpha_po", nll_weight=1.0).needs == ("chosen_len", "rejected_len")
    with pytest.raises(ValueError, match="lengths"):
        tb.losses.make("alpha_po", nll_weight=1.0).required_inputs(tb.FlatSpace(3))
    assert tb.losses.make("tan_principled", zeta="reward_scaled").needs == ("score_gap",)
    with pytest.raises(ValueError, match="missing"):
        tb.losses.make("simpo")(*one(-1.0, -2.0, -1.0, -1.0))


@pytest.mark.parametrize("name, kwargs, message", [
    ("simpo", dict(beta=0.0), "beta"),
    ("simpo", dict(gamma=-0.1), "gamma"),
    ("sigmoid_norm", dict(beta=-1.0), "beta"),
    ("r_dpo", dict(alpha=-0.5), "alpha"),
    ("r_dpo", dict(beta=torch.tensor([0.1, 0.0])), "beta"),
    ("orpo", dict(lam=-0.1), "lam"),
    ("orpo", dict(beta=0.1), "accepted fields"),
    ("cpo", dict(beta=0.0), "beta"),
    ("cpo", dict(alpha=-1.0), "alpha"),
    ("alpha_po", dict(beta=-0.1), "beta"),
    ("alpha_po", dict(alpha=float("nan")), "alpha"),
    ("alpha_po", dict(gamma=-1.0), "gamma"),
    ("alpha_po", dict(nll_weight=-1.0), "nll_weight"),
    ("alpha_po", dict(length_normalized=1), "length_normalized"),
    ("alpha_dpo", dict(beta=0.0), "beta"),
    ("alpha_dpo", dict(gamma=-1.0), "gamma"),
    ("alpha_dpo", dict(alpha=-0.2), "alpha"),
    ("alpha_dpo", dict(ema_decay=1.0), "ema_decay"),
    ("asft", dict(lam=-1.0), "lam"),
    ("discopop", dict(tau=0.0), "tau"),
    ("discopop", dict(beta=-0.1), "beta"),
    ("tan_principled", dict(zeta="reward"), "zeta"),
    ("tan_principled", dict(beta=0.0), "beta"),
    ("simpo", dict(gamma_beta_ratio=0.25), "accepted fields"),
])
def test_validation(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tb.losses.make(name, **kwargs)


def test_registry_metadata():
    expected = {
        "simpo": ("projection", "non_proper"), "sigmoid_norm": ("closed", "logit_link"),
        "r_dpo": ("closed", "logit_link"), "orpo": ("numeric", "single_response"),
        "cpo": ("numeric", "single_response"), "alpha_po": ("closed", "logit_link"),
        "alpha_dpo": ("numeric", "non_proper"), "asft": ("closed", "single_response"),
        "discopop": ("projection", "non_proper"), "tan_principled": ("projection", "non_proper"),
    }
    for name, (kind, family) in expected.items():
        cls = tb.losses.REGISTRY[name]
        assert (cls.target_kind, cls.family) == (kind, family), name
        assert cls.citation and cls.evidence
    assert tb.losses.REGISTRY["tan_principled"].reconstruction
    assert tb.losses.REGISTRY["alpha_dpo"].stateful
    defaults = tb.losses.fields("simpo")
    assert defaults == {"beta": 2.0, "gamma": 0.5}                    # γ = 2.0·0.25
    assert tb.losses.fields("alpha_dpo") == {"beta": 2.5, "gamma": 1.5, "alpha": 0.2, "ema_decay": 0.9}
    assert tb.losses.fields("orpo") == {"lam": 0.1} and tb.losses.fields("cpo") == {"beta": 0.1, "alpha": 1.0}
    assert tb.losses.fields("discopop") == {"beta": 0.1, "tau": 0.05}
