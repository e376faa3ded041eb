"""kto, apo_zero, apo_down, nca, bco, cal_dpo, dpop, minor_dpo, rpo, spo, flex_dpo: per-record
values, TRL cross-checks, state protocols, the free-δ BCO target, E1 minimisers, validation and
per-run broadcasting.

Every expected number is computed here independently: NumPy formulas, hand arithmetic, SciPy
minimisers over the simplex written with NumPy loss code, or independently derived E1 values
(E1: docs/conventions.md).
"""
import functools
import math

import mpmath
import numpy as np
import pytest
import scipy.optimize as so
import torch
from conftest import E1_PISTAR, E1_REF, E1_REWARD, assert_exact_minimiser, e1_problem, newton_minimiser

import toybench as tb

ANCHOR_LOSSES = ("kto", "apo_zero", "apo_down", "nca", "bco", "cal_dpo", "dpop", "minor_dpo", "rpo", "spo",
                 "flex_dpo")
RNG = np.random.default_rng(11)
B, N = 3, 7
POLICY = -RNG.uniform(0.2, 6.0, size=(2, B, N))          # chosen, rejected log-probs (< 0)
REF = -RNG.uniform(0.2, 6.0, size=(2, B, N))             # reference log-probs
LENGTHS = RNG.integers(1, 6, size=(2, B, N)).astype(float)
Z0 = np.array([0.0, 0.4, 1.3])                           # KTO states, one per run
DELTA = np.array([-0.7, 0.0, 0.25])                      # BCO states, one per run
PISTAR = E1_REF * np.exp(E1_REWARD) / (E1_REF * np.exp(E1_REWARD)).sum()   # π*_β, β = 1, full precision


def test_pistar_matches_reference():
    np.testing.assert_allclose(PISTAR, E1_PISTAR, atol=5e-7)       # derived here, 6 decimals


def softplus(t):
    return np.logaddexp(0.0, t)


def sigmoid(t):
    return 0.5 * (1 + np.tanh(t / 2))


def tv(p, q):
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum()


# name, kwargs, state ({key: [B] array} or None), numpy loss f(gw, gl, c, lc)
NUMPY_LOSSES = {
    "kto": (dict(beta=0.3, lam_desirable=1.2, lam_undesirable=0.7), {"z0": Z0},
            lambda gw, gl, c, lc: 1.2 * (1 - sigmoid(0.3 * (gw - Z0[:, None])))
            + 0.7 * (1 - sigmoid(0.3 * (Z0[:, None] - gl)))),
    "apo_zero": (dict(beta=0.4), None, lambda gw, gl, c, lc: 1 - sigmoid(0.4 * gw) + sigmoid(0.4 * gl)),
    "apo_down": (dict(beta=0.4), None, lambda gw, gl, c, lc: sigmoid(0.4 * gw) + 1 - sigmoid(0.4 * (gw - gl))),
    "nca": (dict(beta=0.6), None,
            lambda gw, gl, c, lc: softplus(-0.6 * gw) + 0.5 * softplus(0.6 * gw) + 0.5 * softplus(0.6 * gl)),
    "bco": (dict(beta=0.5, delta=0.3), None,
            lambda gw, gl, c, lc: softplus(0.3 - 0.5 * gw) + softplus(0.5 * gl - 0.3)),
    "cal_dpo": (dict(beta=0.2, calib_weight=0.5), None,
                lambda gw, gl, c, lc: softplus(-(gw - gl)) + 0.5 * ((gw - 2.5) ** 2 + (gl + 2.5) ** 2)),
    "dpop": (dict(beta=0.3, lam=5.0), None,
             lambda gw, gl, c, lc: softplus(-0.3 * (gw - gl - 5.0 * np.maximum(0.0, -gw)))),
    "minor_dpo": (dict(beta=0.7), None, lambda gw, gl, c, lc: softplus(-0.7 * (gw - np.maximum(0.0, gl)))),
    "rpo": (dict(beta=0.3, alpha=0.8), None, lambda gw, gl, c, lc: softplus(-0.3 * (gw - gl)) - 0.8 * c / lc),
    "spo": (dict(beta=0.3, lam=2.0), None,
            lambda gw, gl, c, lc: softplus(-0.3 * (gw - gl)) + 2.0 * np.maximum(0.0, -gw)),
    "flex_dpo": (dict(beta_plus=0.5, beta_minus=0.35), None, lambda gw, gl, c, lc: softplus(-(0.5 * gw - 0.35 * gl))),
}
OPTION_LOSSES = {
    "bco_running_state": ("bco", dict(beta=0.5, delta="running"), {"delta": DELTA, "steps": np.ones(B)},
                          lambda gw, gl, c, lc: softplus(DELTA[:, None] - 0.5 * gw)
                          + softplus(0.5 * gl - DELTA[:, None])),
    "bco_free_state": ("bco", dict(beta=1.5, delta="free"), {"delta": DELTA, "steps": np.ones(B)},
                       lambda gw, gl, c, lc: softplus(DELTA[:, None] - 1.5 * gw) + softplus(1.5 * gl - DELTA[:, None])),
    "cal_dpo_paper_weight": ("cal_dpo", dict(beta=0.5, calib_weight=1.0), None,
                             lambda gw, gl, c, lc: softplus(-(gw - gl)) + (gw - 1.0) ** 2 + (gl + 1.0) ** 2),
    "rpo_liu": ("rpo", dict(beta=0.01, alpha=0.005, variant="liu"), None,
                lambda gw, gl, c, lc: softplus(-0.01 * (gw - gl)) - 0.005 * c),
    "spo_vf": ("spo", dict(beta=0.3, lam=2.0, reading="vf"), None,
               lambda gw, gl, c, lc: softplus(-0.3 * (gw - gl)) + 2.0 * np.maximum(0.0, -gw / lc)),
}


def torch_inputs(loss, state=None):
    """The loss's arguments at the random points (float64 tensors)."""
    args = [torch.tensor(x) for x in (POLICY[0], POLICY[1], REF[0], REF[1])]
    kwargs = {"chosen_len": torch.tensor(LENGTHS[0]), "rejected_len": torch.tensor(LENGTHS[1])}
    kwargs = {name: kwargs[name] for name in loss.needs}
    if state is not None:
        kwargs["state"] = {key: torch.tensor(value) for key, value in state.items()}
    return args, kwargs


def numpy_logratios():
    return POLICY[0] - REF[0], POLICY[1] - REF[1], POLICY[0], LENGTHS[0]


@pytest.mark.parametrize("name", sorted(NUMPY_LOSSES))
def test_per_record_against_numpy(name):
    kwargs, state, reference = NUMPY_LOSSES[name]
    loss = tb.losses.make(name, **kwargs)
    args, extra = torch_inputs(loss, state)
    got = loss(*args, **extra).numpy()
    assert got.shape == (B, N)
    np.testing.assert_allclose(got, reference(*numpy_logratios()), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("label", sorted(OPTION_LOSSES))
def test_per_record_options_against_numpy(label):
    name, kwargs, state, reference = OPTION_LOSSES[label]
    loss = tb.losses.make(name, **kwargs)
    args, extra = torch_inputs(loss, state)
    np.testing.assert_allclose(loss(*args, **extra).numpy(), reference(*numpy_logratios()), rtol=1e-12, atol=1e-14)


def one(*values):
    return [torch.tensor([[v]], dtype=torch.float64) for v in values]


def sp(t):
    return math.log1p(math.exp(t))


def sig(t):
    return 1 / (1 + math.exp(-t))


def test_hand_computed_values():
    """One record with g_w = 1, g_l = −1 (ℓ_w = −1, ℓ_l = −3, ℓ^ref = −2 both), Δ = 2, |y_w| = 2."""
    args = one(-1.0, -3.0, -2.0, -2.0)
    lens = dict(chosen_len=torch.tensor([[2.0]]), rejected_len=torch.tensor([[1.0]]))
    value = lambda name, **kw: tb.losses.make(name, **kw)(*args).item()  # noqa: E731
    # apo_zero: 1 − σ(1) + σ(−1) = 2σ(−1) = 2/(1 + e)
    assert value("apo_zero", beta=1.0) == pytest.approx(2 / (1 + math.e), rel=1e-14)
    # apo_down: σ(1) + 1 − σ(2)
    assert value("apo_down", beta=1.0) == pytest.approx(sig(1) + 1 - sig(2), rel=1e-14)
    # nca: sp(−1) + ½ sp(1) + ½ sp(−1) = 1.5·sp(−1) + ½·sp(1)
    assert value("nca", beta=1.0) == pytest.approx(1.5 * sp(-1) + 0.5 * sp(1), rel=1e-14)
    # bco δ = 0: 2·sp(−1); δ = 0.5: sp(−0.5) + sp(−1.5)
    assert value("bco", beta=1.0, delta=0.0) == pytest.approx(2 * sp(-1), rel=1e-14)
    assert value("bco", beta=1.0, delta=0.5) == pytest.approx(sp(-0.5) + sp(-1.5), rel=1e-14)
    # cal_dpo β = ½: calibration targets ±1 are met exactly, only sp(−Δ) = sp(−2) is left
    assert value("cal_dpo", beta=0.5) == pytest.approx(sp(-2), rel=1e-14)
    # cal_dpo β = 1, c = 1: sp(−2) + (1 − ½)² + (−1 + ½)² = sp(−2) + ½
    assert value("cal_dpo", beta=1.0, calib_weight=1.0) == pytest.approx(sp(-2) + 0.5, rel=1e-14)
    # minor_dpo: g_l < 0 is floored at 0 → sp(−1)
    assert value("minor_dpo", beta=1.0) == pytest.approx(sp(-1), rel=1e-14)
    # flex_dpo β⁺ = 1, β⁻ = 0.8: sp(−(1 + 0.8))
    assert value("flex_dpo", beta_plus=1.0, beta_minus=0.8) == pytest.approx(sp(-1.8), rel=1e-14)
    # rpo (pang): sp(−2) + 1·(1/2) (NLL −ℓ_w/|y_w|); liu: sp(−2) + 0.1·1
    assert tb.losses.make("rpo", beta=1.0)(*args, **lens).item() == pytest.approx(sp(-2) + 0.5, rel=1e-14)
    assert value("rpo", beta=1.0, alpha=0.1, variant="liu") == pytest.approx(sp(-2) + 0.1, rel=1e-14)
    # kto z₀ = ½: 2 − σ(½) − σ(3/2)
    kto = tb.losses.make("kto", beta=1.0)
    state = {"z0": torch.tensor([0.5], dtype=torch.float64)}
    assert kto(*args, state=state).item() == pytest.approx(2 - sig(0.5) - sig(1.5), rel=1e-14)


def test_hand_computed_penalties():
    """g_w = −1 (ℓ_w = −3, ℓ^ref_w = −2), g_l = −3 (ℓ_l = −5, ℓ^ref_l = −2), Δ = 2, |y_w| = 4."""
    args = one(-3.0, -5.0, -2.0, -2.0)
    # dpop β = 1, λ = ½: margin 2 − ½·1 = 1.5 → sp(−1.5)
    assert tb.losses.make("dpop", beta=1.0, lam=0.5)(*args).item() == pytest.approx(sp(-1.5), rel=1e-14)
    # spo hinge β = 1, λ = 2: sp(−2) + 2·1; vf reading: sp(−2) + 2·(1/4)
    assert tb.losses.make("spo", beta=1.0, lam=2.0)(*args).item() == pytest.approx(sp(-2) + 2.0, rel=1e-14)
    vf = tb.losses.make("spo", beta=1.0, lam=2.0, reading="vf")
    lens = dict(chosen_len=torch.tensor([[4.0]]), rejected_len=torch.tensor([[1.0]]))
    assert vf(*args, **lens).item() == pytest.approx(sp(-2) + 0.5, rel=1e-14)
    # minor_dpo with g_l = +0.5 > 0: sp(−(g_w − g_l)) with g_w = −1 → sp(1.5)
    minor = tb.losses.make("minor_dpo", beta=1.0)
    assert minor(*one(-3.0, -1.5, -2.0, -2.0)).item() == pytest.approx(sp(1.5), rel=1e-14)


def test_special_cases_reduce_to_known_losses():
    """flex_dpo β⁺ = β⁻ is DPO; dpop λ = 0, spo λ = 0 and rpo α = 0 are DPO; kto with z₀ = 0 is apo_zero."""
    args, _ = torch_inputs(tb.losses.make("dpo"))
    dpo = tb.losses.make("dpo", beta=0.3)(*args)
    for name, kwargs in (("flex_dpo", dict(beta_plus=0.3, beta_minus=0.3)), ("dpop", dict(beta=0.3, lam=0.0)),
                         ("spo", dict(beta=0.3, lam=0.0)), ("rpo", dict(beta=0.3, alpha=0.0, variant="liu"))):
        torch.testing.assert_close(tb.losses.make(name, **kwargs)(*args), dpo, rtol=1e-14, atol=0)
    zero = {"z0": torch.zeros(B, dtype=torch.float64)}
    torch.testing.assert_close(tb.losses.make("kto", beta=0.3)(*args, state=zero),
                               tb.losses.make("apo_zero", beta=0.3)(*args), rtol=1e-14, atol=1e-15)


# ------------------------------------------------------------------------------------ TRL
def log_sigmoid(t):
    return -math.log1p(math.exp(-t))


def test_trl_dpo_trainer_v19_single_response_types():
    """TRL v1.9.0 DPOTrainer, ``f_divergence_type="reverse_kl"`` (score S = g), per sequence:
    ``nca_pair`` −logσ(βS_w) − ½logσ(−βS_w) − ½logσ(−βS_l); ``bco_pair`` −logσ(βS_w) − logσ(−βS_l)
    (δ = 0); ``apo_zero`` (1 − σ(βg_w)) + σ(βg_l); ``apo_down`` σ(βg_w) + 1 − σ(β·(S_w − S_l))."""
    pc, pr, rc, rr, beta = -7.5, -9.0, -8.1, -8.4, 0.1
    s_w, s_l = pc - rc, pr - rr
    args = one(pc, pr, rc, rr)
    trl = {
        "nca": -log_sigmoid(beta * s_w) - 0.5 * log_sigmoid(-beta * s_w) - 0.5 * log_sigmoid(-beta * s_l),
        "bco": -log_sigmoid(beta * s_w) - log_sigmoid(-beta * s_l),
        "apo_zero": (1 - sig(beta * s_w)) + sig(beta * s_l),
        "apo_down": sig(beta * s_w) + 1 - sig(beta * (s_w - s_l)),
    }
    for name, expected in trl.items():
        loss = tb.losses.make(name, beta=beta, **(dict(delta=0.0) if name == "bco" else {}))
        assert loss(*args).item() == pytest.approx(expected, rel=1e-12), name


class TRLRunningMoments:
    """TRL's ``RunningMoments`` mean update (trl/trainer/utils.py, v0.28.0), fed one scalar per step."""

    def __init__(self):
        self.mean, self.count = 0.0, 1e-24

    def update(self, value):
        total = self.count + 1
        self.mean += (value - self.mean) * 1 / total
        self.count = total


def test_trl_v028_bco_pair_running_mean():
    """TRL v0.28.0 DPOTrainer ``bco_pair``: rewards = cat(βg_w, βg_l).mean() (detached), the
    running mean is updated with that scalar, δ = running.mean, then
    −logσ(βg_w − δ) − logσ(−(βg_l − δ)). TRL v1.9.0's BCOTrainer (``trl/experimental/bco``, no UDM
    weights) computes δ and the loss the same way. Three batches of two records, equal weights."""
    beta = 0.1
    batches = [((-3.0, -4.5), (-5.0, -2.5), (-3.3, -4.0), (-4.1, -3.0)),
               ((-2.0, -6.0), (-7.0, -3.5), (-2.6, -5.2), (-6.1, -3.9)),
               ((-1.5, -2.2), (-3.0, -4.0), (-2.5, -2.0), (-2.7, -4.4))]
    loss = tb.losses.make("bco", beta=beta, delta="running")
    running = TRLRunningMoments()
    state = loss.init_state(1, torch.zeros(1, 2, dtype=torch.float64))
    for chosen, rejected, ref_chosen, ref_rejected in batches:
        inputs = dict(zip(("chosen_logp", "rejected_logp", "ref_chosen_logp", "ref_rejected_logp"),
                          (torch.tensor([values], dtype=torch.float64) for values in (chosen, rejected, ref_chosen,
                                                                                      ref_rejected)), strict=False))
        rewards = ([beta * (c - r) for c, r in zip(chosen, ref_chosen, strict=False)]
                   + [beta * (c - r) for c, r in zip(rejected, ref_rejected, strict=False)])
        running.update(sum(rewards) / len(rewards))
        delta = running.mean
        trl = [-log_sigmoid(beta * (c - rc) - delta) - log_sigmoid(-(beta * (r - rr) - delta))
               for c, r, rc, rr in zip(chosen, rejected, ref_chosen, ref_rejected, strict=False)]
        state = loss.update_state(state, inputs, torch.full((1, 2), 0.5, dtype=torch.float64))
        np.testing.assert_allclose(loss(**inputs, state=state)[0].numpy(), trl, rtol=1e-12)


def test_trl_kto_trainer_v19():
    """TRL v1.9.0 KTOTrainer ``loss_type="kto"``: chosen 1 − σ(β(g − z₀)), rejected 1 − σ(β(z₀ − g)),
    weighted by ``desirable_weight``/``undesirable_weight``; z₀ = clamp(mean of g over the KL
    completions (each prompt with a completion cycled from another example), min=0), detached; the
    batch loss is the mean of the 2N unpaired terms. One prompt: the KL completions are the batch's
    completions, so their mean is the mean of g over all 2N completions. Ours sums the two terms
    per record: twice TRL's mean."""
    beta, lam_d, lam_u = 0.1, 1.0, 1.33
    chosen, rejected = [-2.0, -3.1, -0.7], [-2.5, -0.4, -3.0]
    ref_chosen, ref_rejected = [-2.4, -2.5, -1.9], [-3.0, -1.0, -4.1]
    g_chosen = [c - r for c, r in zip(chosen, ref_chosen, strict=False)]
    g_rejected = [c - r for c, r in zip(rejected, ref_rejected, strict=False)]
    kl_completions = g_rejected[1:] + g_rejected[:1] + g_chosen[1:] + g_chosen[:1]     # cycled
    z0 = max(0.0, sum(kl_completions) / len(kl_completions))
    assert z0 > 0                                           # the clamp is not what makes this pass
    terms = ([lam_d * (1 - sig(beta * (g - z0))) for g in g_chosen]
             + [lam_u * (1 - sig(beta * (z0 - g))) for g in g_rejected])
    trl_batch_loss = sum(terms) / len(terms)
    loss = tb.losses.make("kto", beta=beta, lam_desirable=lam_d, lam_undesirable=lam_u)
    inputs = dict(zip(("chosen_logp", "rejected_logp", "ref_chosen_logp", "ref_rejected_logp"),
                      (torch.tensor([v], dtype=torch.float64) for v in (chosen, rejected, ref_chosen, ref_rejected)), strict=False))
    state = loss.update_state(loss.init_state(1, inputs["chosen_logp"]), inputs, torch.ones(1, 3, dtype=torch.float64))
    assert state["z0"].item() == pytest.approx(z0, rel=1e-14)
    assert loss(**inputs, state=state).mean().item() == pytest.approx(2 * trl_batch_loss, rel=1e-12)


def test_trl_rpo():
    """TRL v0.28.0 DPOTrainer ``rpo_alpha=α``: loss = −logσ(β·logits) + α·NLL, NLL the token-mean
    cross-entropy of the chosen completion; v1.9.0 ``loss_type=["sigmoid", "sft"]``,
    ``loss_weights=[1, α]`` gives the same number for a batch holding one sequence."""
    chosen_tokens, rejected_tokens = [-0.4, -1.1, -0.2, -0.9], [-0.9, -1.7]
    ref_chosen, ref_rejected, beta, alpha = -3.0, -2.0, 0.1, 1.0
    summed_w, summed_l = sum(chosen_tokens), sum(rejected_tokens)
    logits = (summed_w - ref_chosen) - (summed_l - ref_rejected)
    nll = -sum(chosen_tokens) / len(chosen_tokens)
    trl = -log_sigmoid(beta * logits) + alpha * nll
    lens = dict(chosen_len=torch.tensor([[4.0]]), rejected_len=torch.tensor([[2.0]]))
    got = tb.losses.make("rpo", beta=beta, alpha=alpha)(*one(summed_w, summed_l, ref_chosen, ref_rejected), **lens)
    assert got.item() == pytest.approx(trl, rel=1e-12)


# ------------------------------------------------------------------------------------ state
def record_dict(runs=B):
    names = ("chosen_logp", "rejected_logp", "ref_chosen_logp", "ref_rejected_logp")
    return dict(zip(names, (torch.tensor(x[:runs]) for x in (POLICY[0], POLICY[1], REF[0], REF[1])), strict=False))


def numpy_completion_mean(weight, runs=B):
    w = np.broadcast_to(weight, (runs, N)) / np.broadcast_to(weight, (runs, N)).sum(-1, keepdims=True)
    gw, gl = (POLICY[0] - REF[0])[:runs], (POLICY[1] - REF[1])[:runs]
    return (w * (gw + gl) / 2).sum(-1)


def test_kto_state_protocol():
    loss = tb.losses.make("kto")
    like = torch.zeros(2, 3, dtype=torch.float32)
    state = loss.init_state(2, like)
    assert state["z0"].tolist() == [0.0, 0.0] and state["z0"].dtype == torch.float32
    weight = RNG.uniform(0.1, 1.0, size=(1, N))
    inputs = record_dict()
    shift = torch.tensor([[-3.0], [0.0], [3.0]], dtype=torch.float64)   # run 0 negative mean, run 2 positive
    inputs["chosen_logp"], inputs["rejected_logp"] = inputs["chosen_logp"] + shift, inputs["rejected_logp"] + shift
    mean = numpy_completion_mean(weight) + shift[:, 0].numpy()
    exact = loss.population_state(inputs, torch.tensor(weight))
    np.testing.assert_allclose(exact["z0"].numpy(), np.maximum(mean, 0.0), rtol=1e-12, atol=0)
    assert exact["z0"][0].item() == 0.0 and exact["z0"][2].item() > 0
    stale = {"z0": torch.tensor([5.0, 5.0, 5.0], dtype=torch.float64)}
    torch.testing.assert_close(loss.update_state(stale, inputs, torch.tensor(weight))["z0"], exact["z0"])


def test_kto_state_at_the_boundary():
    """A completion with π = 0 (g = −inf) makes the mean −inf and z₀ = 0; a zero-weight −inf is ignored."""
    loss = tb.losses.make("kto")
    inputs = {key: torch.tensor([[-1.0, -2.0]], dtype=torch.float64) for key in
              ("chosen_logp", "rejected_logp", "ref_chosen_logp", "ref_rejected_logp")}
    inputs["rejected_logp"] = torch.tensor([[-torch.inf, -1.0]], dtype=torch.float64)
    assert loss.population_state(inputs, torch.tensor([[0.5, 0.5]]))["z0"].item() == 0.0
    ignored = loss.population_state(inputs, torch.tensor([[0.0, 1.0]]))["z0"].item()
    assert ignored == pytest.approx(0.5, rel=1e-14)          # (g_w + g_l)/2 = (0 + 1)/2 on the weighted record


def test_bco_running_state():
    loss = tb.losses.make("bco", beta=0.5, delta="running")
    inputs = record_dict()
    state = loss.init_state(B, inputs["chosen_logp"])
    assert state["delta"].tolist() == [0.0] * B and state["steps"].tolist() == [0.0] * B
    history = []
    for step in range(3):
        weight = RNG.uniform(0.1, 1.0, size=(1, N))
        history.append(0.5 * numpy_completion_mean(weight))
        state = loss.update_state(state, inputs, torch.tensor(weight))
        np.testing.assert_allclose(state["delta"].numpy(), np.mean(history, axis=0), rtol=1e-12)
        assert state["steps"].tolist() == [step + 1.0] * B
    exact = loss.population_state(inputs, torch.tensor(weight))
    np.testing.assert_allclose(exact["delta"].numpy(), history[-1], rtol=1e-12)


def test_bco_free_delta_is_the_profile_minimiser():
    """δ*(π) = argmin_δ Σ w·[sp(δ − βg_w) + sp(βg_l − δ)]: SciPy's brentq root of the derivative
    Σ w·[σ(δ − βg_w) − σ(βg_l − δ)] (convex profile), also with a −inf entry."""
    beta = 0.8
    loss = tb.losses.make("bco", beta=beta, delta="free")
    inputs = record_dict()
    inputs["rejected_logp"][1, 2] = -torch.inf
    weight = RNG.uniform(0.1, 1.0, size=(1, N))
    got = loss.population_state(inputs, torch.tensor(weight))["delta"].numpy()
    a = beta * (POLICY[0] - REF[0])
    b = beta * (inputs["rejected_logp"].numpy() - REF[1])
    for run in range(B):
        def slope(delta):
            return (weight[0] * (sigmoid(delta - a[run]) - sigmoid(b[run] - delta))).sum()
        root = so.brentq(slope, -50, 50, xtol=1e-14, rtol=1e-15)
        assert got[run] == pytest.approx(root, abs=1e-12)   # brentq: |root − δ*| ≤ xtol + 4·eps·|δ*| ≈ 1e-14
        profile = lambda d: (weight[0] * (softplus(d - a[run]) + softplus(b[run] - d))).sum()  # noqa: E731
        assert profile(root) < min(profile(root - 1e-3), profile(root + 1e-3))
    updated = loss.update_state(loss.init_state(B, inputs["chosen_logp"]), inputs, torch.tensor(weight))
    np.testing.assert_allclose(updated["delta"].numpy(), got, rtol=0, atol=0)


def test_stateful_calls_need_state_and_stateless_refuse_it():
    args, _ = torch_inputs(tb.losses.make("dpo"))
    for name, kwargs in (("kto", {}), ("bco", dict(delta="running")), ("bco", dict(delta="free"))):
        loss = tb.losses.make(name, **kwargs)
        assert loss.stateful
        with pytest.raises(ValueError, match="state"):
            loss(*args)
    with pytest.raises(ValueError, match="no state"):
        tb.losses.make("bco", delta=0.0)(*args, state={"delta": torch.zeros(B)})
    assert not tb.losses.make("bco", delta=0.0).stateful


BETAS = torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64)


@pytest.mark.parametrize("name, kwargs", [
    ("nca", {"beta": BETAS}), ("apo_zero", {"beta": BETAS}), ("apo_down", {"beta": BETAS}),
    ("rpo", {"beta": BETAS, "alpha": 0.7}), ("rpo", {"beta": BETAS, "alpha": 0.7, "variant": "liu"}),
    ("cal_dpo", {"beta": BETAS, "calib_weight": 0.3}), ("flex_dpo", {"beta_plus": BETAS, "beta_minus": 0.08}),
    ("dpop", {"beta": BETAS, "lam": 5.0}), ("minor_dpo", {"beta": BETAS}), ("spo", {"beta": BETAS, "lam": 2.0}),
    ("spo", {"beta": BETAS, "lam": 2.0, "reading": "vf"}), ("bco", {"beta": BETAS, "delta": 0.3}),
])
def test_closed_form_grads_match_autograd(name, kwargs):
    """Random log-ratios, |g| = 600 (|βg| from 60 to 1800) on both sides and g = 0 exactly (the
    kinks of dpop, minor_dpo and spo, where autograd takes relu′(0) = 0), [B] β: the closed form
    equals autograd (the losses' softplus is float64-exact up to x = 40 and the identity beyond,
    where σ(x) = 1 in float64, so its autograd slope is σ(x) everywhere)."""
    loss = tb.losses.make(name, **kwargs)
    rng = np.random.default_rng(11)
    chosen = torch.tensor(np.concatenate([rng.normal(-3, 2, size=(3, 6)), [[-600, 600, -2.0, -1.0]] * 3], 1))
    rejected = torch.tensor(np.concatenate([rng.normal(-3, 2, size=(3, 6)), [[600, -600, -4.0, -2.5]] * 3], 1))
    args = (chosen, rejected, torch.full_like(chosen, -2.0), torch.full_like(chosen, -2.5))
    lengths = {"chosen_len": torch.tensor(rng.integers(1, 6, size=(1, 10)), dtype=torch.float64),
               "rejected_len": torch.tensor(rng.integers(1, 6, size=(1, 10)), dtype=torch.float64)}
    extra = {name: lengths[name] for name in loss.needs}
    for fast, slow in zip(loss.input_grads(*args, **extra), tb.losses.Loss.input_grads(loss, *args, **extra), strict=False):
        torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-14)


def test_stateful_gradients_treat_the_state_as_constant():
    """∂L/∂ℓ_w = −λ_D·β·σ′(β(g_w − z₀)) for KTO, −β·σ(δ − βg_w) for BCO, with the state held fixed."""
    args, _ = torch_inputs(tb.losses.make("dpo"))
    kto = tb.losses.make("kto", beta=0.4, lam_desirable=1.5)
    z0 = torch.tensor(Z0)[:, None]
    chosen_grad, rejected_grad = kto.input_grads(*args, state={"z0": torch.tensor(Z0)})
    gw, gl = args[0] - args[2], args[1] - args[3]
    t_w, t_l = torch.sigmoid(0.4 * (gw - z0)), torch.sigmoid(0.4 * (z0 - gl))
    torch.testing.assert_close(chosen_grad, -1.5 * 0.4 * t_w * (1 - t_w), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(rejected_grad, 0.4 * t_l * (1 - t_l), rtol=1e-12, atol=1e-15)
    bco = tb.losses.make("bco", beta=0.4, delta="free")
    delta = torch.tensor(DELTA)
    chosen_grad, _ = bco.input_grads(*args, state={"delta": delta, "steps": torch.ones(B)})
    torch.testing.assert_close(chosen_grad, -0.4 * torch.sigmoid(delta[:, None] - 0.4 * gw), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------------------ E1 by SciPy
def record_weights(law):
    """D(a, b) for E1 under W_u / W_s / W_c, built in NumPy (diagonal removed, BT labels)."""
    if law == "uniform":
        mu = np.ones((4, 4))
    elif law == "ref":
        mu = np.outer(E1_REF, E1_REF)
    else:
        mu = np.zeros((4, 4))
        mu[[0, 1, 2], [1, 2, 3]] = 1.0
    np.fill_diagonal(mu, 0.0)
    mu = mu / mu.sum()
    weights = (mu + mu.T) * sigmoid(E1_REWARD[:, None] - E1_REWARD[None, :])
    np.fill_diagonal(weights, 0.0)
    return weights


def tsp(t):
    return torch.logaddexp(torch.zeros_like(t), t)


def relu(t):
    return torch.clamp(t, min=0.0)


# label → (loss name, tb kwargs, per-record loss of (g_w, g_l, ℓ_w) in plain torch ops, convex in the logits); β = 1
E1_LOSSES = {
    "apo_zero": ("apo_zero", dict(beta=1.0), lambda gw, gl, lw: 1 - torch.sigmoid(gw) + torch.sigmoid(gl), False),
    "apo_down": ("apo_down", dict(beta=1.0), lambda gw, gl, lw: torch.sigmoid(gw) + 1 - torch.sigmoid(gw - gl), False),
    "nca": ("nca", dict(beta=1.0), lambda gw, gl, lw: tsp(-gw) + 0.5 * tsp(gw) + 0.5 * tsp(gl), False),
    "bco": ("bco", dict(beta=1.0, delta=0.0), lambda gw, gl, lw: tsp(-gw) + tsp(gl), False),
    "cal_dpo": ("cal_dpo", dict(beta=1.0),
                lambda gw, gl, lw: tsp(-(gw - gl)) + 0.5 * ((gw - 0.5) ** 2 + (gl + 0.5) ** 2), False),
    "dpop": ("dpop", dict(beta=1.0, lam=50.0), lambda gw, gl, lw: tsp(-(gw - gl - 50 * relu(-gw))), True),
    "dpop_lam5": ("dpop", dict(beta=1.0, lam=5.0), lambda gw, gl, lw: tsp(-(gw - gl - 5 * relu(-gw))), True),
    "minor_dpo": ("minor_dpo", dict(beta=1.0), lambda gw, gl, lw: tsp(-(gw - relu(gl))), False),
    "rpo": ("rpo", dict(beta=1.0, alpha=1.0, variant="liu"), lambda gw, gl, lw: tsp(-(gw - gl)) - lw, True),
    "spo": ("spo", dict(beta=1.0, lam=10.0), lambda gw, gl, lw: tsp(-(gw - gl)) + 10 * relu(-gw), True),
    "spo_lam1": ("spo", dict(beta=1.0, lam=1.0), lambda gw, gl, lw: tsp(-(gw - gl)) + relu(-gw), True),
    "flex_dpo": ("flex_dpo", dict(beta_plus=1.0, beta_minus=0.8), lambda gw, gl, lw: tsp(-(gw - 0.8 * gl)), True),
}
# Optima on a kink of max(0, ±g): the responses held at π_ref there (found by the 4-D search, then
# solved exactly on that face, where the objective is smooth).
KINK_FACES = {("dpop", "uniform"): [0, 1, 2, 3], ("dpop", "ref"): [0, 1, 2, 3],
              ("spo", "uniform"): [0, 1, 2, 3], ("spo", "ref"): [0, 1, 2, 3],
              ("dpop_lam5", "uniform"): [1, 2], ("dpop_lam5", "ref"): [1, 2],
              ("spo_lam1", "uniform"): [1], ("spo_lam1", "ref"): [1], ("minor_dpo", "ref"): [1]}


def population_value(per_record, weights, logp):
    """Σ D(a,b)·L(g_a, g_b, ℓ_a) for a log-prob vector (torch float64)."""
    g = logp - torch.tensor(np.log(E1_REF))
    return (torch.tensor(weights) * per_record(g[:, None], g[None, :], logp[:, None])).sum()


def scipy_minimiser(per_record, weights, starts=8, pinned=()):
    """Best BFGS minimiser of the population loss over softmax logits (π_ref, uniform, then random
    starts); responses in ``pinned`` are held at their π_ref mass and the rest share what is left.
    The gradient is exact (torch autograd, float64). Returns (π, objective value). (BFGS rather
    than L-BFGS-B: the latter's threaded BLAS calls crawl on a loaded 2-core machine.)"""
    rng = np.random.default_rng(0)
    free = [y for y in range(4) if y not in pinned]
    log_free_mass = math.log(1 - E1_REF[list(pinned)].sum())

    def logp_of(logits):
        logp = torch.tensor(np.log(E1_REF))
        return logp.index_put((torch.tensor(free),), torch.log_softmax(logits, -1) + log_free_mass)

    def objective(logits):
        logits = torch.tensor(logits, requires_grad=True)
        value = population_value(per_record, weights, logp_of(logits))
        (grad,) = torch.autograd.grad(value, logits)
        return float(value.detach()), grad.numpy()

    if not free:
        return E1_REF.copy(), float(population_value(per_record, weights, torch.tensor(np.log(E1_REF))))
    x0s = [np.log(E1_REF[free]), np.zeros(len(free))] + [2 * rng.normal(size=len(free)) for _ in range(starts - 2)]
    best = min((so.minimize(objective, x0, jac=True, method="BFGS", options=dict(maxiter=5000, gtol=1e-12))
                for x0 in x0s), key=lambda res: res.fun)
    return logp_of(torch.tensor(best.x)).exp().numpy(), best.fun


@functools.cache
def generic_e1(label, law):
    """4-D search: 3 starts for losses convex in the logits (one suffices there), 8 otherwise."""
    _, _, per_record, convex = E1_LOSSES[label]
    return scipy_minimiser(per_record, record_weights(law), starts=3 if convex else 8)


@functools.cache
def scipy_e1(label, law):
    """The E1 minimiser: the generic search, or the exact face solution at a kink optimum."""
    if (label, law) not in KINK_FACES:
        return generic_e1(label, law)
    return scipy_minimiser(E1_LOSSES[label][2], record_weights(law), starts=3, pinned=KINK_FACES[label, law])


def e1_tv(label, other, law):
    """TV from the SciPy minimiser under ``law`` to π*_β (``other="pistar"``) or π_ref (``"pi_ref"``)."""
    return tv(scipy_e1(label, law)[0], PISTAR if other == "pistar" else E1_REF)


@pytest.mark.parametrize("label, law", sorted(KINK_FACES))
def test_kink_faces_are_optimal(label, law):
    """The face solution is a minimum: no generic 4-D search goes lower, and no small step in any
    of 200 random logit directions lowers the loss (off the face the kink makes the change
    first-order positive, along it second-order; 1e-13 absorbs float64 rounding of values ~1)."""
    face, face_value = scipy_e1(label, law)
    assert generic_e1(label, law)[1] >= face_value - 1e-12
    per_record, weights = E1_LOSSES[label][2], record_weights(law)
    directions = np.random.default_rng(1).normal(size=(200, 4))
    for step in (1e-3, 1e-5):
        for direction in directions:
            moved = torch.log_softmax(torch.tensor(np.log(face) + step * direction), -1)
            assert float(population_value(per_record, weights, moved)) >= face_value - 1e-13


def test_e1_apo_minimisers_match_reference():
    """Derived independently: APO-zero (0, 0, 0.2985, 0.7015) under W_u, (0, 0, 0.542, 0.458) under W_s,
    infimum 0.6055; APO-down all mass on y₁ (W_u) / y₃ (W_s), infimum 0.5315 (W_u). The printed
    digits bound the tolerances; zero masses are numerical zeros (the slope vanishes like σ′)."""
    found, value = scipy_e1("apo_zero", "uniform")
    np.testing.assert_allclose(found, [0, 0, 0.2985, 0.7015], atol=5e-5)
    assert value == pytest.approx(0.6055, abs=5e-5)
    np.testing.assert_allclose(scipy_e1("apo_zero", "ref")[0], [0, 0, 0.542, 0.458], atol=5e-4)
    found, value = scipy_e1("apo_down", "uniform")
    np.testing.assert_allclose(found, [0, 1, 0, 0], atol=1e-6)
    assert value == pytest.approx(0.5315, abs=5e-5)
    np.testing.assert_allclose(scipy_e1("apo_down", "ref")[0], [0, 0, 0, 1], atol=1e-6)


@pytest.mark.parametrize("label, other, law, expected", [
    ("nca", "pistar", "uniform", 0.319),
    ("bco", "pistar", "uniform", 0.012), ("bco", "pistar", "ref", 0.193),
    ("cal_dpo", "pistar", "uniform", 0.327),
    ("dpop_lam5", "pistar", "uniform", 0.402), ("dpop_lam5", "pi_ref", "uniform", 0.062),
    ("minor_dpo", "pistar", "uniform", 0.273),
    ("rpo", "pistar", "uniform", 0.066), ("rpo", "pistar", "ref", 0.260),
    ("spo_lam1", "pi_ref", "uniform", 0.177),
    ("flex_dpo", "pistar", "uniform", 0.074),
])
def test_e1_distances_match_reference(label, other, law, expected):
    """Independently derived E1 distances, printed to 3 decimals: tolerance half a unit of the last digit,
    except DPOP λ = 5, whose exact face optimum gives 0.4039 and 0.0607 where the kink-blind value is
    0.402 and 0.062 (a generic search stopping short of the kink): 2e-3 there."""
    tolerance = 2e-3 if label == "dpop_lam5" else 5e-4
    assert e1_tv(label, other, law) == pytest.approx(expected, abs=tolerance)


@pytest.mark.parametrize("label, expected", [("nca", 0.024), ("minor_dpo", 0.090)])
def test_e1_mu_dependence_matches_reference(label, expected):
    """Derived: TV between the W_u and W_s minimisers (3 decimals)."""
    assert tv(scipy_e1(label, "uniform")[0], scipy_e1(label, "ref")[0]) == pytest.approx(expected, abs=5e-4)


def test_e1_collapse_to_reference():
    """Derived: DPOP λ = 50 and SPO (hinge) λ = 10 give exactly π_ref on E1, loss log 2
    per record; the generic search from six other starts finds nothing lower."""
    for label in ("dpop", "spo"):
        for law in ("uniform", "ref"):
            assert scipy_e1(label, law)[1] == pytest.approx(math.log(2), rel=1e-15)
            assert generic_e1(label, law)[1] >= math.log(2) - 1e-12


def numpy_kto_fixed_point(law, lam_desirable=1.0):
    """Iterate z₀ ← max(0, Σ D·(g_a + g_b)/2) and the SciPy minimiser at fixed z₀ until z₀ settles."""
    weights, z0 = record_weights(law), 0.0
    for _ in range(20):
        def per_record(gw, gl, lw, z0=z0):
            return lam_desirable * (1 - torch.sigmoid(gw - z0)) + 1 - torch.sigmoid(z0 - gl)
        found, _ = scipy_minimiser(per_record, weights)
        g = np.log(found) - np.log(E1_REF)
        new = max(0.0, float((weights * (g[:, None] + g[None, :]) / 2).sum()))
        if new == z0:
            return found, z0
        z0 = new
    raise AssertionError("KTO fixed point did not settle")


def apo_zero_e1_face(law):
    """APO-zero's E1 minimiser (β = 1), exact: the infimum lies on the face π₀ = π₁ = 0 (derived;
    ``test_e1_apo_minimisers_match_reference``), where σ(g_y) = π_y/(π_y + π_ref,y) and the
    objective is a smooth function of t = π₂ (π₃ = 1 − t); t is the root of its derivative by
    mpmath.findroot at 40 digits. Returns
    (π as float64, the face objective value)."""
    weights = record_weights(law)
    with mpmath.workdps(40):
        def value(t):
            pi = [0, 0, t, 1 - t]
            s = [pi[y] / (pi[y] + mpmath.mpf(E1_REF[y])) for y in range(4)]
            return sum(mpmath.mpf(weights[a, b]) * (1 - s[a] + s[b]) for a in range(4) for b in range(4))

        t = mpmath.findroot(lambda t: mpmath.diff(value, t), mpmath.mpf("0.4"))
        assert mpmath.diff(value, t, 2) > 0 and 0 < t < 1
        return np.array([0.0, 0.0, float(t), float(1 - t)]), float(value(t))


def test_e1_kto_fixed_point_is_apo_zero():
    """Derived: the E1 fixed point has z₀ = 0, so KTO = APO-zero, TV 0.236 from π*_β (W_u;
    the exact value is 0.23546, which the printed value rounds up: tolerance 1e-3).

    The NumPy fixed-point iteration settles at z₀ = 0 (its BFGS minimiser drives g₀, g₁ far below
    0). The exact APO-zero minimiser (``apo_zero_e1_face``, mpmath) is the reference point: it has
    g₀ = g₁ = −∞, so z₀ = max(0, Σ D·(g_a + g_b)/2) = 0 there too, and no interior point found by
    BFGS has a lower objective (1e-12: float64 rounding of a 12-term sum of O(1) values). BFGS's
    own point is not compared coordinate-wise: it stops on precision loss as two logits run to −∞,
    not at its gradient tolerance, so its accuracy has no bound (7e-9 on one machine, 6.5e-8 on
    another)."""
    for law in ("uniform", "ref"):
        exact, exact_value = apo_zero_e1_face(law)
        assert numpy_kto_fixed_point(law)[1] == 0.0
        weights = record_weights(law)
        with np.errstate(divide="ignore"):
            g = np.log(exact) - np.log(E1_REF)
        compared = weights > 0
        assert max(0.0, float((weights[compared] * (g[:, None] + g[None, :])[compared] / 2).sum())) == 0.0
        assert scipy_e1("apo_zero", law)[1] >= exact_value - 1e-12
    assert tv(apo_zero_e1_face("uniform")[0], PISTAR) == pytest.approx(0.236, abs=1e-3)


# tolerances in TV for tb.solve against the SciPy minimiser (BFGS with the exact autograd gradient,
# gtol 1e-12): smooth interior optima 1e-7 (at gradient g the distance is ≤ g/λ, λ ≥ 1e-3 on E1);
# boundary optima 1e-6 (the slope vanishes like σ′ as π → 0, so both stop short of the face by the
# mass whose slope is below their tolerances); kink optima 1e-3 (a smooth method stops up to ~2e-4
# short, see test_kink_faces_are_optimal).
SOLVE_TOLERANCE = {"apo_zero": 1e-6, "apo_down": 1e-6, "minor_dpo": 1e-3, "dpop": 1e-3, "dpop_lam5": 1e-3,
                   "spo": 1e-3, "spo_lam1": 1e-3}


@pytest.mark.slow
@pytest.mark.parametrize("label, law", [(label, law) for label in sorted(E1_LOSSES) for law in ("uniform", "ref")])
def test_solve_matches_scipy(label, law):
    """``tb.solve`` (multi-start, stationarity) agrees with the independent SciPy minimiser
    (slow: the claims in test_claims_anchor already compare solve with SciPy on E1 for every loss)."""
    from toybench.solve import solve
    name, kwargs, _, _ = E1_LOSSES[label]
    found = solve(tb.losses.make(name, **kwargs), tb.population(e1_problem(law))).logp.exp()[0].numpy()
    assert tv(found, scipy_e1(label, law)[0]) < SOLVE_TOLERANCE.get(label, 1e-7)


@pytest.mark.slow
def test_solve_kto_fixed_point_matches_numpy():
    from toybench.solve import solve
    for law in ("uniform", "ref"):
        found = solve(tb.losses.make("kto", beta=1.0), tb.population(e1_problem(law))).logp.exp()[0].numpy()
        assert tv(found, apo_zero_e1_face(law)[0]) < 1e-6      # solve's accuracy at a boundary optimum, as above


# ------------------------------------------------------------------------------------ BCO free-δ target
def numpy_bco_free_target(law, beta, noise=0.0):
    weights = record_weights(law)
    noisy = (1 - noise) * weights + noise * weights.T
    chosen, rejected = noisy.sum(1), noisy.sum(0)
    logits = np.log(E1_REF) + (np.log(chosen) - np.log(rejected)) / beta
    return logits - np.logaddexp.reduce(logits)


@pytest.mark.parametrize("law", ["uniform", "ref", "chain"])
def test_bco_free_target_formula(law):
    for beta in (0.5, 1.0, 2.0):
        for noise in (0.0, 0.1):
            got = tb.losses.make("bco", beta=beta, delta="free").target(e1_problem(law), noise=noise)
            assert got.shape == (1, 4)
            np.testing.assert_allclose(got[0].numpy(), numpy_bco_free_target(law, beta, noise), rtol=1e-12, atol=1e-13)


def test_bco_free_target_is_the_joint_minimiser():
    """Newton's method (exact autograd Hessian, from π_ref and δ = 0) minimises
    Σ D·[sp(δ − βg_w) + sp(βg_l − δ)] jointly over logits and δ to float64 rounding; the closed form
    π ∝ π_ref·(n_w/n_l)^{1/β} must match it. Reference accuracy |∇|/λ ≤ 1e-13 (asserted); the
    tolerance 1e-11 is the closed form's float64 rounding (logs and powers of O(1) numbers) with
    margin."""
    for law, beta in (("uniform", 1.0), ("ref", 0.5)):
        weights = torch.tensor(record_weights(law))

        def objective(x, weights=weights, beta=beta):
            g = beta * (torch.log_softmax(x[:4], -1) - torch.tensor(np.log(E1_REF)))
            return (weights * (tsp(x[4] - g[:, None]) + tsp(g[None, :] - x[4]))).sum()

        x, grad_norm, curvature = newton_minimiser(objective, np.r_[np.log(E1_REF), 0.0])
        assert_exact_minimiser(grad_norm, curvature, bound=1e-13)
        found = torch.softmax(x[:4], -1).numpy()
        target = tb.losses.make("bco", beta=beta, delta="free").target(e1_problem(law)).exp()[0].numpy()
        assert tv(found, target) < 1e-11


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_bco_free_target_for_a_product_law_drops_self_pairs(beta):
    """μ⊗μ (μ ≠ π_ref), an intransitive preference matrix: with self-pairs dropped, NumPy's
    n_w(y) = Σ_{b≠y} μ_y μ_b M[y,b], n_l(y) = Σ_{a≠y} μ_a μ_y M[a,y] and the closed form
    n_w/n_l = (p − μ_y/2)/(1 − p − μ_y/2), p = Σ_b μ_b M[y,b], agree with ``target`` to float64
    rounding; p/(1 − p) (self-pairs kept) is a different point."""
    rng = np.random.default_rng(5)
    upper = np.triu(rng.uniform(0.05, 0.95, size=(5, 5)), 1)
    pref = upper + np.tril(1 - upper.T, -1) + 0.5 * np.eye(5)               # M + Mᵀ = 1
    mu, ref = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    prob = tb.Problem(tb.FlatSpace(5), torch.tensor(np.log(ref)[None]), preference=torch.tensor(pref[None]),
                      pair_dist=torch.tensor(np.outer(mu, mu)[None]))
    off = 1 - np.eye(5)
    n_w = (mu[:, None] * mu[None, :] * pref * off).sum(1)
    n_l = (mu[:, None] * mu[None, :] * pref * off).sum(0)
    p = pref @ mu
    np.testing.assert_allclose(n_w / n_l, (p - mu / 2) / (1 - p - mu / 2), rtol=1e-13)

    def normalised(ratio):
        logits = np.log(ref) + np.log(ratio) / beta
        return np.exp(logits - np.logaddexp.reduce(logits))

    got = tb.losses.make("bco", beta=beta, delta="free").target(prob).exp()[0].numpy()
    np.testing.assert_allclose(got, normalised((p - mu / 2) / (1 - p - mu / 2)), rtol=1e-12)
    assert tv(got, normalised(p / (1 - p))) > 1e-3


@pytest.mark.slow
def test_solve_fixed_point_reaches_bco_free_target():
    """``tb.solve`` iterating the profiled δ (fixed point) lands on the closed form (slow: tens of rounds)."""
    from toybench.solve import solve
    for law in ("uniform", "ref"):
        loss = tb.losses.make("bco", beta=1.0, delta="free")
        found = solve(loss, tb.population(e1_problem(law))).logp.exp()[0].numpy()
        assert tv(found, loss.target(e1_problem(law)).exp()[0].numpy()) < 1e-7     # state tolerance 1e-12


def test_bco_target_none_outside_free_one_prompt():
    prob = e1_problem()
    assert tb.losses.make("bco", beta=1.0, delta=0.0).target(prob) is None
    assert tb.losses.make("bco", beta=1.0).target(prob) is None                     # running δ
    two_prompts = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=0)
    assert tb.losses.make("bco", beta=1.0, delta="free").target(two_prompts) is None
    order = torch.tensor([[[0.5, 1.0, 1.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.5]]], dtype=torch.float64)
    never_rejected = tb.Problem(tb.FlatSpace(3), torch.full((1, 3), -math.log(3.0), dtype=torch.float64),
                                preference=order)
    assert tb.losses.make("bco", beta=1.0, delta="free").target(never_rejected) is None
    for name in ANCHOR_LOSSES:
        if name != "bco":
            assert tb.losses.make(name).target(e1_problem(lengths=[1.0] * 4)) is None, name


def test_bco_free_target_per_run():
    prob = e1_problem("ref")
    betas = [0.5, 1.0, 2.0]
    batched = tb.losses.make("bco", beta=torch.tensor(betas, dtype=torch.float64), delta="free").target(prob)
    assert batched.shape == (3, 1, 4)
    for b, beta in enumerate(betas):
        torch.testing.assert_close(batched[b], tb.losses.make("bco", beta=beta, delta="free").target(prob),
                                   rtol=1e-14, atol=0)
    noise = torch.tensor([0.0, 0.2], dtype=torch.float64)
    noisy = tb.losses.make("bco", beta=1.0, delta="free").target(prob, noise=noise)
    assert noisy.shape == (2, 1, 4)
    np.testing.assert_allclose(noisy[1, 0].numpy(), numpy_bco_free_target("ref", 1.0, 0.2), rtol=1e-12)


# ------------------------------------------------------------------------------------ per-run
PER_RUN = [
    ("kto", "lam_undesirable", [0.5, 1.0, 1.5], dict(beta=0.3)),
    ("kto", "beta", [0.1, 0.3, 1.0], {}),
    ("apo_zero", "beta", [0.1, 0.5, 2.0], {}),
    ("apo_down", "beta", [0.1, 0.5, 2.0], {}),
    ("nca", "beta", [0.1, 0.5, 2.0], {}),
    ("bco", "delta", [-0.5, 0.0, 0.7], dict(beta=0.4)),
    ("bco", "beta", [0.1, 0.5, 2.0], dict(delta="running")),
    ("cal_dpo", "calib_weight", [0.0, 0.5, 1.0], dict(beta=0.3)),
    ("dpop", "lam", [0.0, 5.0, 50.0], dict(beta=0.2)),
    ("minor_dpo", "beta", [0.1, 0.5, 2.0], {}),
    ("rpo", "alpha", [0.0, 0.5, 1.0], dict(beta=0.3)),
    ("spo", "lam", [0.0, 1.0, 10.0], dict(beta=0.3, reading="vf")),
    ("flex_dpo", "beta_minus", [0.02, 0.05, 0.1], dict(beta_plus=0.1)),
]


@pytest.mark.parametrize("name, field, values, fixed", PER_RUN)
def test_per_run_hyperparameters_broadcast(name, field, values, fixed):
    batched = tb.losses.make(name, **fixed, **{field: torch.tensor(values, dtype=torch.float64)})
    state = {"kto": {"z0": Z0}, "bco": {"delta": DELTA, "steps": np.ones(B)}}.get(name) if batched.stateful else None
    args, extra = torch_inputs(batched, state)
    got = batched(*args, **extra)
    for b, value in enumerate(values):
        single = tb.losses.make(name, **fixed, **{field: value})
        one_extra = {key: ({k: v[b:b + 1] for k, v in item.items()} if key == "state" else item[b:b + 1])
                     for key, item in extra.items()}
        torch.testing.assert_close(got[b:b + 1], single(*(x[b:b + 1] for x in args), **one_extra), rtol=1e-15, atol=0)


def test_per_run_state_statistics():
    """[B] β: run b of BCO's free-δ and running statistics equals the scalar-β call on run b."""
    betas = [0.2, 0.9, 1.7]
    inputs = record_dict()
    weight = torch.tensor(RNG.uniform(0.1, 1.0, size=(1, N)))
    for mode in ("free", "running"):
        batched = tb.losses.make("bco", beta=torch.tensor(betas, dtype=torch.float64), delta=mode)
        stats = batched.population_state(inputs, weight)["delta"]
        for b, beta in enumerate(betas):
            single = tb.losses.make("bco", beta=beta, delta=mode)
            run = {key: value[b:b + 1] for key, value in inputs.items()}
            expected = single.population_state(run, weight)["delta"]
            torch.testing.assert_close(stats[b:b + 1], expected, rtol=1e-14, atol=0)


def test_float32_inputs_stay_float32():
    args = [torch.tensor(x, dtype=torch.float32) for x in (POLICY[0], POLICY[1], REF[0], REF[1])]
    lens = {"chosen_len": torch.tensor(LENGTHS[0], dtype=torch.float32),
            "rejected_len": torch.tensor(LENGTHS[1], dtype=torch.float32)}
    for name in ANCHOR_LOSSES:
        loss = tb.losses.make(name)
        extra = {key: lens[key] for key in loss.needs}
        if loss.stateful:
            extra["state"] = loss.init_state(B, args[0])
        assert loss(*args, **extra).dtype == torch.float32, name


# ------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("name, kwargs, message", [
    ("kto", dict(beta=0.0), "beta"),
    ("kto", dict(lam_desirable=-1.0), "lam_desirable"),
    ("kto", dict(lam_undesirable=-0.1), "lam_undesirable"),
    ("kto", dict(desirable_weight=1.0), "accepted fields"),
    ("apo_zero", dict(beta=-0.1), "beta"),
    ("apo_down", dict(beta=0.0), "beta"),
    ("nca", dict(beta=float("nan")), "beta"),
    ("nca", dict(temperature_alpha=1e-4), "accepted fields"),
    ("bco", dict(beta=0.0), "beta"),
    ("bco", dict(delta="mean"), "delta"),
    ("bco", dict(delta=float("inf")), "delta"),
    ("bco", dict(delta=[[0.0]]), "delta"),
    ("cal_dpo", dict(beta=0.0), "beta"),
    ("cal_dpo", dict(calib_weight=-0.5), "calib_weight"),
    ("dpop", dict(lam=-1.0), "lam"),
    ("dpop", dict(beta=-1.0), "beta"),
    ("minor_dpo", dict(beta=0.0), "beta"),
    ("rpo", dict(alpha=-1.0), "alpha"),
    ("rpo", dict(variant="trl"), "variant"),
    ("rpo", dict(variant=None), "variant"),
    ("rpo", dict(beta=torch.tensor([0.1, -0.1])), "beta"),
    ("spo", dict(lam=-1.0), "lam"),
    ("spo", dict(reading="bilevel"), "reading"),
    ("spo", dict(beta=0.0), "beta"),
    ("flex_dpo", dict(beta_plus=0.0), "beta_plus"),
    ("flex_dpo", dict(beta_minus=-0.1), "beta_minus"),
    ("flex_dpo", dict(beta_plus=0.1, beta_minus=0.2), "beta_minus"),
    ("flex_dpo", dict(beta=0.1), "accepted fields"),
])
def test_validation(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tb.losses.make(name, **kwargs)


def test_length_inputs_depend_on_options():
    assert tb.losses.make("rpo").needs == ("chosen_len", "rejected_len")
    assert tb.losses.make("rpo", variant="liu").needs == ()
    assert tb.losses.make("spo").needs == ()
    assert tb.losses.make("spo", reading="vf").needs == ("chosen_len", "rejected_len")
    for loss in (tb.losses.make("rpo"), tb.losses.make("spo", reading="vf")):
        with pytest.raises(ValueError, match="lengths"):
            loss.required_inputs(tb.FlatSpace(4))
    with pytest.raises(ValueError, match="missing"):
        tb.losses.make("rpo")(*one(-1.0, -2.0, -1.0, -1.0))


def test_registry_metadata():
    for name in ANCHOR_LOSSES:
        cls = tb.losses.REGISTRY[name]
        assert (cls.family, cls.target_kind) == ("single_response", "numeric"), name
        assert cls.citation and cls.evidence and cls.__doc__
    assert {name for name in ANCHOR_LOSSES if tb.losses.REGISTRY[name].reconstruction} == {"minor_dpo", "spo"}
    assert {name for name in ANCHOR_LOSSES if tb.losses.REGISTRY[name].convex} == {"dpop", "rpo", "spo", "flex_dpo"}
    assert tb.losses.fields("kto") == {"beta": 0.1, "lam_desirable": 1.0, "lam_undesirable": 1.0}
    assert tb.losses.fields("bco") == {"beta": 0.1, "delta": "running"}
    assert tb.losses.fields("cal_dpo") == {"beta": 0.001, "calib_weight": 0.5}
    assert tb.losses.fields("dpop") == {"beta": 0.1, "lam": 50.0}
    assert tb.losses.fields("rpo") == {"beta": 0.1, "alpha": 1.0, "variant": "pang"}
    assert tb.losses.fields("spo") == {"beta": 0.1, "lam": 1.0, "reading": "hinge"}
    assert tb.losses.fields("flex_dpo") == {"beta_plus": 0.1, "beta_minus": 0.08}
    assert tb.losses.make("kto").stateful and tb.losses.make("bco").stateful
