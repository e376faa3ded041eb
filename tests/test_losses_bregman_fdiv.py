"""bpo, sba, fdpo, fpo, exo: per-record values, TRL cross-checks, targets, validation, [B] hyperparameters."""
import math

import numpy as np
import pytest
import torch
from conftest import E1_REF, E1_REWARD, e1_problem
from scipy.optimize import brentq

import toybench as tb
from toybench.losses.bregman import BPO, SBA
from toybench.losses.fdiv import EXO, FDPO, FPO, with_rewards
from toybench.optima.fdiv import fdpo_target

RNG = np.random.default_rng(1)
POINTS = RNG.normal(size=(4, 3, 6))            # chosen, rejected, ref chosen, ref rejected: [B=3, N=6]
REWARDS = RNG.normal(size=(2, 3, 6))           # chosen_reward, rejected_reward
RTOL = 1e-12  # float64, same formula in two parametrisations: rounding only


def as_tensors(points):
    return [torch.tensor(p) for p in points]


def sigmoid(t):
    return 1 / (1 + np.exp(-t))


def log_ratios(points=POINTS):
    chosen, rejected, ref_chosen, ref_rejected = points
    return chosen - ref_chosen, rejected - ref_rejected


# ------------------------------------------------------------------------------ BPO / SBA
def numpy_ratio_loss(h, R, lam=None, s=4.0):
    """Paper Table 2 (constant-free), written in R."""
    if h == "lr":
        return np.log1p(R)
    if h == "kliep":
        return R + np.log(R)
    if h == "lsif":
        return R**2 - 2 / R
    if h == "ba":
        return R ** (lam + 1) - (lam + 1) / lam * R ** (-lam)
    if lam == 0:
        return (R + np.log(R)) / s
    return R ** (lam + 1) / (s * (lam + 1)) - R ** (-lam) / (s * lam)


BREGMAN_CASES = [("bpo", dict(h="lr"), "lr", None, 4.0), ("bpo", dict(h="kliep"), "kliep", None, 4.0),
                 ("bpo", dict(h="lsif"), "lsif", None, 4.0), ("bpo", dict(h="ba", lam=0.5), "ba", 0.5, 4.0),
                 ("bpo", dict(h="ba", lam=-0.5), "ba", -0.5, 4.0), ("bpo", dict(h="ba", lam=1.2), "ba", 1.2, 4.0),
                 ("sba", dict(lam=-0.5), "sba", -0.5, 4.0), ("sba", dict(lam=0.0), "sba", 0.0, 4.0),
                 ("sba", dict(lam=0.5, s=2.0), "sba", 0.5, 2.0), ("sba", dict(lam=1.2), "sba", 1.2, 4.0)]


@pytest.mark.parametrize("name,kwargs,h,lam,s", BREGMAN_CASES)
def test_bregman_per_record_against_numpy(name, kwargs, h, lam, s):
    beta = 0.7
    loss = tb.losses.make(name, beta=beta, **kwargs)
    chosen_g, rejected_g = log_ratios()
    ratio = np.exp(-beta * (chosen_g - rejected_g))
    got = loss(*as_tensors(POINTS)).numpy()
    assert got.shape == (3, 6)
    np.testing.assert_allclose(got, numpy_ratio_loss(h, ratio, lam, s), rtol=RTOL, atol=1e-14)


def numpy_generator(h, lam=None, s=4.0):
    """(h, h′) of BPO Table 2 (the /2 of h_LR included)."""
    if h == "lr":
        return (lambda R: (R * np.log(R) - (1 + R) * np.log1p(R)) / 2,
                lambda R: (np.log(R) - np.log1p(R)) / 2)
    if h == "kliep":
        return lambda R: R * np.log(R) - R, np.log
    if h == "lsif":
        return lambda R: (R - 1) ** 2, lambda R: 2 * (R - 1)
    scale = 1.0 if h == "ba" else 1 / (s * (lam + 1))
    return (lambda R: scale * (R ** (1 + lam) - R) / lam,
            lambda R: scale * ((1 + lam) * R**lam - 1) / lam)


THM3_CONSTANT = {"lr": lambda lam, s: 0.0, "kliep": lambda lam, s: 0.0, "lsif": lambda lam, s: 1.0,
                 "ba": lambda lam, s: 1 / lam, "sba": lambda lam, s: 1 / (s * lam * (lam + 1))}


@pytest.mark.parametrize("name,kwargs,h,lam,s", [c for c in BREGMAN_CASES if c[3] != 0.0])
def test_bregman_loss_is_theorem3_form_of_h(name, kwargs, h, lam, s):
    """ℓ_h(R) = h′(R)R − h(R) − h′(1/R) (Thm. 3) from h itself equals the Table 2 form plus the
    constant Table 2 drops (lsif 1, ba 1/λ, sba 1/(sλ(λ+1))): this is the LSIF correction R² − 2R⁻¹."""
    loss = tb.losses.make(name, beta=1.0, **kwargs)
    z = np.linspace(-2.0, 2.0, 9)
    generator, slope = numpy_generator(h, lam, s)
    R = np.exp(-z)
    theorem3 = slope(R) * R - generator(R) - slope(1 / R)
    zeros = torch.zeros(1, 9, dtype=torch.float64)
    got = loss(torch.tensor(z)[None], zeros, zeros, zeros).numpy()[0]
    np.testing.assert_allclose(got + THM3_CONSTANT[h](lam, s), theorem3, rtol=1e-11, atol=1e-12)


GRADIENT_WEIGHT = {"lr": lambda R, lam, s: 1 / (1 + R), "kliep": lambda R, lam, s: 1 + 1 / R,
                   "lsif": lambda R, lam, s: 2 * R + 2 / R**2,
                   "ba": lambda R, lam, s: (lam + 1) * (R**lam + R ** (-lam - 1)),
                   "sba": lambda R, lam, s: (R**lam + R ** (-lam - 1)) / s}


@pytest.mark.parametrize("name,kwargs,h,lam,s", BREGMAN_CASES)
def test_bregman_dphi_is_paper_gradient_weight(name, kwargs, h, lam, s):
    """dℓ/dz = −R·G_h(R) with G_h from BPO Table 2 / Prop. 4."""
    loss = tb.losses.make(name, beta=1.0, **kwargs)
    z = np.linspace(-3.0, 3.0, 13)
    R = np.exp(-z)
    np.testing.assert_allclose(loss.dphi(torch.tensor(z)).numpy(), -R * GRADIENT_WEIGHT[h](R, lam, s), rtol=RTOL)


def test_bregman_hand_computed_values():
    """z = β·Δ = log 2, so R = ½ (or z = 2 log 2, R = ¼ for SBA)."""
    log2 = math.log(2.0)
    args = [torch.tensor([[v]], dtype=torch.float64) for v in (log2, 0.0, 0.0, 0.0)]
    assert BPO(beta=1.0, h="lr")(*args).item() == pytest.approx(math.log(1.5), rel=1e-14)
    assert BPO(beta=1.0, h="kliep")(*args).item() == pytest.approx(0.5 - log2, rel=1e-14)
    assert BPO(beta=1.0, h="lsif")(*args).item() == pytest.approx(0.25 - 4.0, rel=1e-14)
    assert BPO(beta=1.0, h="ba", lam=1.0)(*args).item() == pytest.approx(0.25 - 4.0, rel=1e-14)  # BA(1) = LSIF
    assert SBA(beta=2.0, lam=-0.5)(*args).item() == pytest.approx(0.5, rel=1e-14)                  # e^{−z/2}, z = 2 log 2
    assert SBA(beta=1.0, lam=0.0, s=4.0)(*args).item() == pytest.approx((0.5 - log2) / 4, rel=1e-14)


def test_bpo_lr_is_trl_sigmoid():
    """TRL v1.9.0 DPOTrainer loss_type="sigmoid": −log σ(β·d), d = Δ for reverse_kl."""
    beta, (pc, pr, rc, rr) = 0.1, (-4.2, -6.0, -4.5, -5.1)
    d = (pc - rc) - (pr - rr)
    args = [torch.tensor([[v]], dtype=torch.float64) for v in (pc, pr, rc, rr)]
    assert BPO(beta=beta, h="lr")(*args).item() == pytest.approx(math.log1p(math.exp(-beta * d)), rel=1e-13)


def test_bpo_clip_clamps_the_ratio():
    """R clamped to [0.1, 5]: z clamped to [−log 5, −log 0.1]; flat (zero gradient) outside."""
    loss = BPO(beta=1.0, h="kliep", clip_min=0.1, clip_max=5.0)
    z = torch.tensor([[-4.0, -1.0, 0.5, 2.0, 3.0]], dtype=torch.float64)
    zeros = torch.zeros_like(z)
    clamped = np.clip(z.numpy(), -math.log(5.0), -math.log(0.1))
    np.testing.assert_allclose(loss(z, zeros, zeros, zeros).numpy(), np.exp(-clamped) - clamped, rtol=RTOL)
    slope = loss.dphi(z).numpy()[0]
    assert slope[0] == 0.0 and slope[-1] == 0.0
    np.testing.assert_allclose(slope[1:4], -np.exp(-z.numpy()[0, 1:4]) - 1, rtol=RTOL)


# ------------------------------------------------------------------------------ f-DPO
def numpy_score(g, divergence, alpha):
    """S = f′(u), u = e^g, derived here table, constants dropped."""
    u = np.exp(g)
    return {"reverse_kl": np.log(u), "forward_kl": -1 / u, "alpha": -(u ** (-alpha)) / alpha,
            "js": np.log(u / (1 + u))}[divergence]


@pytest.mark.parametrize("divergence,alpha", [("reverse_kl", 0.5), ("forward_kl", 0.5), ("js", 0.5),
                                              ("alpha", 0.3), ("alpha", 0.7)])
def test_fdpo_per_record_against_numpy(divergence, alpha):
    beta = 0.4
    chosen_g, rejected_g = log_ratios()
    margin = numpy_score(chosen_g, divergence, alpha) - numpy_score(rejected_g, divergence, alpha)
    got = FDPO(beta=beta, divergence=divergence, alpha=alpha)(*as_tensors(POINTS)).numpy()
    np.testing.assert_allclose(got, np.logaddexp(0.0, -beta * margin), rtol=RTOL)


def test_fdpo_hand_computed_values():
    """g_w = 0 (u = 1), g_l = log 2 (u = 2), β = 1."""
    args = [torch.tensor([[v]], dtype=torch.float64) for v in (0.0, math.log(2.0), 0.0, 0.0)]
    # forward KL: S = −1/u: margin −1 + ½ = −½
    assert FDPO(beta=1.0, divergence="forward_kl")(*args).item() == pytest.approx(math.log1p(math.exp(0.5)), rel=1e-14)
    # JS: S = log(u/(1+u)): margin log ½ − log ⅔ = −log(4/3), loss log(1 + 4/3)
    assert FDPO(beta=1.0, divergence="js")(*args).item() == pytest.approx(math.log(7 / 3), rel=1e-14)
    # α = ½: S = −2u^{−½}: margin −2 + √2
    assert FDPO(beta=1.0, divergence="alpha", alpha=0.5)(*args).item() == pytest.approx(
        math.log1p(math.exp(2 - math.sqrt(2))), rel=1e-14)


def test_fdpo_matches_trl():
    """TRL DPOTrainer, loss_type="sigmoid", written from its source (docs/losses.md):
    v1.9.0: −log σ(β·(φ(g_w) − φ(g_l))), φ = g | −e^{−g} | log σ(g) | e^{(a−1)g}/(a−1) for
    f_divergence_type reverse_kl | forward_kl | js_divergence | alpha_divergence (coef a = 1 − α);
    v0.28.0: alpha_divergence logits = (e^{−a·g_l} − e^{−a·g_w})/a with a = α (paper convention),
    js_divergence logits = Δ − (sp(g_w) − sp(g_l))."""
    beta, (pc, pr, rc, rr) = 0.1, (-4.2, -6.0, -4.5, -5.1)
    gw, gl = pc - rc, pr - rr
    args = [torch.tensor([[v]], dtype=torch.float64) for v in (pc, pr, rc, rr)]
    nll = lambda d: math.log1p(math.exp(-beta * d))  # noqa: E731  −log σ(β·d)
    log_sig = lambda t: -math.log1p(math.exp(-t))    # noqa: E731
    coef = 0.3                                        # TRL v1.9 f_alpha_divergence_coef
    trl_v19 = {
        ("reverse_kl", 0.5): nll(gw - gl),
        ("forward_kl", 0.5): nll(-math.exp(-gw) + math.exp(-gl)),
        ("js", 0.5): nll(log_sig(gw) - log_sig(gl)),
        ("alpha", 1 - coef): nll(math.exp((coef - 1) * gw) / (coef - 1) - math.exp((coef - 1) * gl) / (coef - 1)),
    }
    for (divergence, alpha), expected in trl_v19.items():
        got = FDPO(beta=beta, divergence=divergence, alpha=alpha)(*args).item()
        assert got == pytest.approx(expected, rel=1e-12), divergence
    a = 0.3
    v028_alpha = nll((math.exp(-a * gl) - math.exp(-a * gw)) / a)
    assert FDPO(beta=beta, divergence="alpha", alpha=a)(*args).item() == pytest.approx(v028_alpha, rel=1e-12)
    softplus = lambda t: math.log1p(math.exp(t))  # noqa: E731
    v028_js = nll((gw - gl) - (softplus(gw) - softplus(gl)))
    assert FDPO(beta=beta, divergence="js")(*args).item() == pytest.approx(v028_js, rel=1e-12)


def numpy_fdpo_target(ref, reward, beta, divergence, alpha=0.5):
    """π_ref·(f′)⁻¹((r − λ)/β) with λ by brentq on (λ_min, ∞), table of derived here, one prompt."""
    if divergence == "reverse_kl":
        p = ref * np.exp(reward / beta)
        return p / p.sum()
    inverse = {"forward_kl": lambda v: -1 / v, "alpha": lambda v: (1 - alpha * v) ** (-1 / alpha),
               "js": lambda v: np.exp(v) / (2 - np.exp(v))}[divergence]
    lam_min = reward.max() - {"forward_kl": 0.0, "alpha": beta / alpha, "js": beta * math.log(2)}[divergence]
    excess = lambda lam: (ref * inverse((reward - lam) / beta)).sum() - 1  # noqa: E731
    step = 1e-12 * max(1.0, abs(lam_min))
    high = lam_min + 1.0
    while excess(high) > 0:
        high = lam_min + 2 * (high - lam_min)
    lam = brentq(excess, lam_min + step, high, xtol=1e-15, rtol=1e-15)
    return ref * inverse((reward - lam) / beta)


@pytest.mark.parametrize("divergence,alpha", [("forward_kl", 0.5), ("js", 0.5), ("alpha", 0.3), ("alpha", 0.5),
                                              ("alpha", 0.9), ("reverse_kl", 0.5)])
@pytest.mark.parametrize("beta", [0.3, 1.0, 4.0])
def test_fdpo_target_against_brentq(divergence, alpha, beta):
    prob = tb.Problem.random(tb.FlatSpace(6), prompts=3, seed=5, reward_scale=1.5)
    got = fdpo_target(prob, beta, divergence, alpha).exp().numpy()
    ref, reward = prob.ref_logp.exp().numpy(), prob.reward.numpy()
    expected = np.stack([numpy_fdpo_target(ref[x], reward[x], beta, divergence, alpha) for x in range(3)])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)  # brentq's λ is good to ~1e-15 relative
    assert np.allclose(got.sum(-1), 1.0, rtol=0, atol=1e-15)
    loss_target = FDPO(beta=beta, divergence=divergence, alpha=alpha).target(prob).exp().numpy()
    np.testing.assert_allclose(loss_target, expected, rtol=1e-10, atol=1e-14)


def test_fdpo_target_e1_numbers():
    """Derived independently (f-DPO, arXiv 2309.16240): FKL target (0.126729, 0.112937, 0.120747, 0.639587); TV from π*_β 0.132 (FKL),
    0.378 (JS), 0.104 (α = 0.5), 0.073 (α = 0.3)."""
    prob = e1_problem("uniform")
    fkl = fdpo_target(prob, 1.0, "forward_kl").exp().numpy()[0]
    np.testing.assert_allclose(fkl, [0.126729, 0.112937, 0.120747, 0.639587], atol=6e-7)  # 6 printed digits
    pistar = E1_REF * np.exp(E1_REWARD) / (E1_REF * np.exp(E1_REWARD)).sum()
    for (divergence, alpha), tv in {("forward_kl", 0.5): 0.132, ("js", 0.5): 0.378, ("alpha", 0.5): 0.104,
                                    ("alpha", 0.3): 0.073}.items():
        target = fdpo_target(prob, 1.0, divergence, alpha).exp().numpy()[0]
        assert 0.5 * np.abs(target - pistar).sum() == pytest.approx(tv, abs=6e-4)  # 3 printed digits


def test_fdpo_target_constant_reference():
    """AlphaPO's use: a constant (unnormalised) reference, π(y) = (1 + α(λ − r)/β)^{−1/α}, Σπ = 1."""
    prob = e1_problem()
    got = fdpo_target(prob, 2.0, "alpha", 0.4, ref_logp=torch.zeros(1, 4, dtype=torch.float64)).exp().numpy()[0]
    expected = numpy_fdpo_target(np.ones(4), E1_REWARD, 2.0, "alpha", 0.4)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_fdpo_target_per_run_hyperparameters():
    prob = e1_problem()
    betas, alphas = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64), torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    batched = FDPO(beta=betas, divergence="alpha", alpha=alphas).target(prob)
    assert batched.shape == (3, 1, 4)
    for b in range(3):
        single = FDPO(beta=float(betas[b]), divergence="alpha", alpha=float(alphas[b])).target(prob)
        torch.testing.assert_close(batched[b], single, rtol=1e-13, atol=0)


def test_fdpo_target_disconnected_components_keep_ref_mass():
    """Pairs only inside {0, 1} and {2, 3}: each component gets its π_ref mass and its own λ."""
    table = torch.zeros(1, 4, 4, dtype=torch.float64)
    table[0, 0, 1] = table[0, 2, 3] = 1.0
    prob = e1_problem(table)
    got = FDPO(beta=1.0, divergence="forward_kl").target(prob).exp().numpy()[0]
    for part in ([0, 1], [2, 3]):
        mass = E1_REF[part].sum()
        expected = mass * numpy_fdpo_target(E1_REF[part] / mass, E1_REWARD[part], 1.0, "forward_kl")
        np.testing.assert_allclose(got[part], expected, rtol=1e-10)


# ------------------------------------------------------------------------------ f-PO / EXO
def numpy_generator_f(divergence, alpha):
    """f(u) of the f-PO generators (derived here and MinkaiXu/fPO fpo_loss)."""
    return {"alpha": lambda u: (u ** (1 - alpha) - (1 - alpha) * u - alpha) / (alpha * (alpha - 1)),
            "reverse_kl": lambda u: u * np.log(u) - u + 1, "forward_kl": lambda u: u - 1 - np.log(u),
            "js": lambda u: 0.5 * u * np.log(u) - (1 + u) / 2 * np.log((1 + u) / 2),
            "jeffreys": lambda u: (u - 1) * np.log(u), "hellinger": lambda u: (np.sqrt(u) - 1) ** 2}[divergence]


def numpy_matching(z, t_chosen, divergence, alpha):
    f = numpy_generator_f(divergence, alpha)
    q = sigmoid(z)
    return t_chosen * f(q / t_chosen) + (1 - t_chosen) * f((1 - q) / (1 - t_chosen))


FPO_DIVERGENCES = ["alpha", "reverse_kl", "forward_kl", "js", "jeffreys", "hellinger"]


@pytest.mark.parametrize("divergence", FPO_DIVERGENCES)
def test_fpo_per_record_against_numpy(divergence):
    beta, alpha, eps, beta_reward = 0.6, 0.3, 0.2, 0.8
    chosen_g, rejected_g = log_ratios()
    z = beta * (chosen_g - rejected_g)
    pair = FPO(beta=beta, divergence=divergence, alpha=alpha, eps=eps)(*as_tensors(POINTS)).numpy()
    np.testing.assert_allclose(pair, numpy_matching(z, 1 - eps, divergence, alpha), rtol=1e-11, atol=1e-15)
    exact = FPO(beta=beta, divergence=divergence, alpha=alpha, beta_reward=beta_reward, mode="exact")
    got = exact(*as_tensors(POINTS), chosen_reward=torch.tensor(REWARDS[0]), rejected_reward=torch.tensor(REWARDS[1]))
    t_chosen = sigmoid((REWARDS[0] - REWARDS[1]) / beta_reward)
    np.testing.assert_allclose(got.numpy(), numpy_matching(z, t_chosen, divergence, alpha), rtol=1e-11, atol=1e-15)
    # ↑ rtol 1e-11: the numpy form works in u = q/t, ours in log space; both are float64 but not the same rounding


def test_fpo_hand_computed_value():
    """z = 0, α = ½, ε = 0.1: L = (1 − (√0.9 + √0.1)/√2)/(α(1 − α))."""
    zeros = [torch.zeros(1, 1, dtype=torch.float64)] * 4
    expected = (1 - (math.sqrt(0.9) + math.sqrt(0.1)) / math.sqrt(2)) / 0.25
    assert FPO(beta=1.0, alpha=0.5, eps=0.1)(*zeros).item() == pytest.approx(expected, rel=1e-13)


def test_exo_per_record_against_numpy_and_trl():
    """TRL v1.9.0 DPOTrainer loss_type="exo_pair" (label_smoothing ε > 0):
    σ(βd)(log σ(βd) − log(1 − ε)) + σ(−βd)(log σ(−βd) − log ε)."""
    beta, eps = 0.1, 1e-3
    chosen_g, rejected_g = log_ratios()
    z = beta * (chosen_g - rejected_g)
    trl = sigmoid(z) * (np.log(sigmoid(z)) - np.log(1 - eps)) + sigmoid(-z) * (np.log(sigmoid(-z)) - np.log(eps))
    got = EXO(beta=beta, eps=eps)(*as_tensors(POINTS)).numpy()
    np.testing.assert_allclose(got, trl, rtol=RTOL)
    listed = EXO(beta=beta, beta_reward=0.5, mode="list")
    got = listed(*as_tensors(POINTS), chosen_reward=torch.tensor(REWARDS[0]), rejected_reward=torch.tensor(REWARDS[1]))
    t = sigmoid((REWARDS[0] - REWARDS[1]) / 0.5)
    expected = sigmoid(z) * np.log(sigmoid(z) / t) + sigmoid(-z) * np.log(sigmoid(-z) / (1 - t))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-11, atol=1e-15)  # log(q/t) vs log q − log t rounding


def test_exo_hand_computed_values():
    """z = 0, ε = 0.1: ½(log ½ − log 0.9) + ½(log ½ − log 0.1) = log(0.5/0.3); list mode with equal rewards: 0."""
    zeros = [torch.zeros(1, 1, dtype=torch.float64)] * 4
    assert EXO(beta=1.0, eps=0.1)(*zeros).item() == pytest.approx(math.log(5 / 3), rel=1e-14)
    assert EXO(mode="list")(*zeros, chosen_reward=zeros[0] + 1.0, rejected_reward=zeros[0] + 1.0).item() == 0.0


def test_matching_divergences_of_equal_distributions_vanish():
    """D_f(t ‖ t) = 0 for every generator: records whose margin equals the target's log-odds."""
    for divergence in FPO_DIVERGENCES:
        loss = FPO(beta=1.0, divergence=divergence, eps=0.2)
        margin = torch.tensor([[math.log(0.8 / 0.2)]], dtype=torch.float64)
        zero = torch.zeros_like(margin)
        assert abs(loss(margin, zero, zero, zero).item()) < 1e-15, divergence


def test_list_modes_need_rewards():
    assert FPO(mode="exact").needs == ("chosen_reward", "rejected_reward") and FPO().needs == ()
    zeros = [torch.zeros(1, 1, dtype=torch.float64)] * 4
    with pytest.raises(ValueError, match="chosen_reward"):
        EXO(mode="list")(*zeros)
    prob = e1_problem()
    pairs = with_rewards(tb.population(prob))
    np.testing.assert_array_equal(pairs.fields["chosen_reward"].numpy(), E1_REWARD[pairs.chosen.numpy()])
    general = tb.Problem(tb.FlatSpace(2), torch.log(torch.tensor([[0.5, 0.5]])),
                         preference=torch.tensor([[[0.5, 0.7], [0.3, 0.5]]]))
    with pytest.raises(ValueError, match="Bradley–Terry"):
        with_rewards(tb.population(general))


# ------------------------------------------------------------------------------ descriptors, gradients
def test_field_dependent_class_attributes():
    assert BPO.convex is True and BPO(h="lsif").convex is False and BPO(h="ba", lam=-0.5).convex is True
    assert BPO(h="ba", lam=0.5).convex is False and BPO(h="lr", clip_max=10.0).convex is False
    assert SBA.convex is True and SBA(lam=1.2).convex is False
    assert FDPO.convex is True and FDPO(divergence="js").convex is False
    assert FPO.family == "non_proper" and FPO(mode="exact").family == "logit_link"
    assert EXO.target_kind == "projection" and EXO(mode="list").target_kind == "closed"


GRADIENT_LOSSES = [BPO(beta=0.7, h="lr"), BPO(beta=0.7, h="kliep"), BPO(beta=0.7, h="lsif"),
                   BPO(beta=0.7, h="ba", lam=0.5), BPO(beta=0.7, h="kliep", clip_min=0.5, clip_max=2.0),
                   SBA(beta=0.7, lam=-0.5), SBA(beta=0.7, lam=0.0), FDPO(beta=0.7, divergence="forward_kl"),
                   FDPO(beta=0.7, divergence="js"), FDPO(beta=0.7, divergence="alpha", alpha=0.3),
                   EXO(beta=0.7, eps=0.01)] + [FPO(beta=0.7, divergence=d, alpha=0.3, eps=0.05)
                                               for d in ("alpha", "reverse_kl", "forward_kl", "js", "jeffreys",
                                                         "hellinger")]


@pytest.mark.parametrize("loss", GRADIENT_LOSSES, ids=lambda loss: repr(loss))
def test_closed_form_input_grads_match_autograd(loss):
    inputs = as_tensors(POINTS)
    chosen, rejected = (t.clone().requires_grad_(True) for t in inputs[:2])
    value = loss.per_record(chosen, rejected, *inputs[2:])
    expected = torch.autograd.grad(value.sum(), (chosen, rejected))
    got = loss.input_grads(*inputs)
    for mine, auto in zip(got, expected, strict=False):
        torch.testing.assert_close(mine, auto, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", [EXO(beta=0.7, mode="list"), FPO(beta=0.7, mode="exact", divergence="js"),
                                  FPO(beta=0.7, mode="exact", divergence="alpha", alpha=0.6)], ids=repr)
def test_reward_target_input_grads_match_autograd(loss):
    inputs = as_tensors(POINTS)
    rewards = dict(chosen_reward=torch.tensor(REWARDS[0]), rejected_reward=torch.tensor(REWARDS[1]))
    chosen, rejected = (t.clone().requires_grad_(True) for t in inputs[:2])
    expected = torch.autograd.grad(loss.per_record(chosen, rejected, *inputs[2:], **rewards).sum(), (chosen, rejected))
    for mine, auto in zip(loss.input_grads(*inputs, **rewards), expected, strict=False):
        torch.testing.assert_close(mine, auto, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------ targets
def numpy_pistar(beta):
    p = E1_REF * np.exp(E1_REWARD / beta)
    return p / p.sum()


@pytest.mark.parametrize("loss", [BPO(beta=0.5, h="lsif"), BPO(beta=0.5, h="ba", lam=0.5), SBA(beta=0.5, lam=1.2),
                                  BPO(beta=0.5, h="kliep", clip_min=math.exp(-3.0))],
                         ids=["lsif", "ba", "sba", "clip_inactive"])
def test_bregman_targets_are_pistar(loss):
    for law in ("uniform", "ref", "chain"):
        np.testing.assert_allclose(loss.target(e1_problem(law)).exp().numpy()[0], numpy_pistar(0.5), rtol=1e-13)


def test_bregman_target_none_when_not_closed():
    prob = e1_problem()
    assert BPO(beta=1.0, clip_min=0.1).target(prob) is None          # E1 has |r_a − r_b| = 3 > −log 0.1
    assert BPO(beta=1.0, clip_max=10.0).target(prob) is None
    assert BPO(beta=1.0).target(prob, noise=0.1) is None
    assert SBA(beta=1.0).target(prob, noise=0.1) is None


def test_bregman_target_per_run_beta():
    betas = torch.tensor([0.5, 2.0], dtype=torch.float64)
    got = SBA(beta=betas).target(e1_problem()).exp().numpy()
    assert got.shape == (2, 1, 4)
    for b, beta in enumerate((0.5, 2.0)):
        np.testing.assert_allclose(got[b, 0], numpy_pistar(beta), rtol=1e-13)


def test_list_mode_targets_and_pair_mode_none():
    prob = e1_problem("ref")
    tempered = numpy_pistar(0.3 * 0.5)
    np.testing.assert_allclose(FPO(beta=0.3, mode="exact").target(prob).exp().numpy()[0], tempered, rtol=1e-13)
    np.testing.assert_allclose(EXO(beta=0.3, mode="list").target(prob, noise=0.2).exp().numpy()[0], tempered, rtol=1e-13)
    assert FPO().target(prob) is None and EXO().target(prob) is None
    assert FDPO(beta=1.0).target(prob, noise=0.1) is None


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("build,match", [
    (lambda: BPO(beta=0.0), "beta"),
    (lambda: BPO(h="squared"), "h="),
    (lambda: BPO(h="ba"), "needs lam"),
    (lambda: BPO(h="ba", lam=-1.0), "lam"),
    (lambda: BPO(h="ba", lam=0.0), "lam"),
    (lambda: BPO(h="lsif", lam=0.5), "only with h='ba'"),
    (lambda: BPO(clip_min=0.0), "clip_min"),
    (lambda: BPO(clip_max=-1.0), "clip_max"),
    (lambda: BPO(clip_min=2.0, clip_max=1.0), "below clip_max"),
    (lambda: SBA(lam=-1.5), "lam"),
    (lambda: SBA(s=0.0), "s="),
    (lambda: FDPO(divergence="tv"), "divergence"),
    (lambda: FDPO(alpha=1.0), "alpha"),
    (lambda: FDPO(alpha=0.0), "alpha"),
    (lambda: FPO(divergence="chi2"), "divergence"),
    (lambda: FPO(alpha=1.5), "alpha"),
    (lambda: FPO(mode="list"), "mode"),
    (lambda: FPO(eps=0.0), "eps"),
    (lambda: FPO(beta_reward=0.0), "beta_reward"),
    (lambda: EXO(eps=0.0), "eps"),
    (lambda: EXO(eps=0.5), "eps"),
    (lambda: EXO(mode="exact"), "mode"),
    (lambda: tb.losses.make("exo", label_smoothing=0.1), "accepted fields"),
    (lambda: fdpo_target(e1_problem(), 1.0, "chi2"), "divergence"),
    (lambda: fdpo_target(e1_problem(), -1.0, "js"), "beta"),
    (lambda: fdpo_target(e1_problem(), 1.0, "alpha", -0.5), "alpha"),
    (lambda: fdpo_target(e1_problem(), 1.0, "js", ref_logp=torch.zeros(2, 4)), "ref_logp"),
])
def test_validation_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


# ------------------------------------------------------------------------------ [B] hyperparameters
PER_RUN = [("bpo", dict(h="ba"), "lam", [-0.5, 0.5, 1.2]), ("bpo", dict(h="kliep"), "clip_min", [0.2, 0.5, 0.9]),
           ("sba", {}, "lam", [0.0, -0.5, 1.2]), ("sba", {}, "s", [1.0, 4.0, 8.0]),
           ("fdpo", dict(divergence="alpha"), "alpha", [0.1, 0.5, 0.9]), ("fpo", {}, "alpha", [0.1, 0.5, 0.9]),
           ("fpo", {}, "eps", [1e-3, 0.1, 0.4]), ("exo", {}, "eps", [1e-3, 0.1, 0.4]),
           ("exo", dict(mode="list"), "beta_reward", [0.3, 1.0, 2.0]), ("fdpo", dict(divergence="js"), "beta", [0.1, 1.0, 2.0])]


@pytest.mark.parametrize("name,fixed,field,values", PER_RUN, ids=[f"{n}-{f}" for n, _, f, _ in PER_RUN])
def test_per_run_hyperparameters_broadcast(name, fixed, field, values):
    extra = {}
    if name == "exo" and fixed.get("mode") == "list":
        extra = dict(chosen_reward=torch.tensor(REWARDS[0]), rejected_reward=torch.tensor(REWARDS[1]))
    batched = tb.losses.make(name, **fixed, **{field: torch.tensor(values, dtype=torch.float64)})
    got = batched(*as_tensors(POINTS), **extra)
    for b, value in enumerate(values):
        single = tb.losses.make(name, **fixed, **{field: value})
        row = single(*(t[b:b + 1] for t in as_tensors(POINTS)), **{k: v[b:b + 1] for k, v in extra.items()})
        torch.testing.assert_close(got[b:b + 1], row, rtol=1e-13, atol=1e-15)


def test_log_sigmoid_is_float64_exact():
    """log σ(t) = t − log1p(e^t) (t < 0), −log1p(e^{−t}) (t ≥ 0), in Python floats, including past
    softplus's default linear cut-off at 20."""
    from toybench._numerics import log_sigmoid
    points = [-700.0, -45.0, -30.0, -20.5, -1.0, 0.0, 1.0, 20.5, 30.0, 45.0, 700.0]
    exact = [t - math.log1p(math.exp(t)) if t < 0 else -math.log1p(math.exp(-t)) for t in points]
    got = log_sigmoid(torch.tensor(points, dtype=torch.float64)).tolist()
    assert got == pytest.approx(exact, rel=1e-15, abs=1e-300)
