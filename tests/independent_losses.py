"""Independent NumPy/SciPy reference for the stress tests of ``tb.solve``.

Every per-record formula is written here from the losses' documented formulas (their papers'
equations as quoted in the docstrings), in NumPy, without calling toybench's loss code; the
population records D(x, a, b) = ρ(x)·(μ(a,b) + μ(b,a))·σ(r_a − r_b) (self-pairs dropped, μ
normalised per prompt) are rebuilt from the problem's definition. ``minimise`` is SciPy BFGS with
finite-difference gradients from several starts, then (kinked losses) a derivative-free Powell
polish (sound at kinks). Its accuracy: it never goes below the true infimum (it evaluates the objective at real
points), so "solve's value ≤ reference + tol" can only fail when solve misses a lower point.
"""
import numpy as np
from scipy.optimize import brentq, minimize
from scipy.special import expit, logsumexp


def sp(x):
    return np.logaddexp(0.0, x)


def log1mexp(x):
    """log(1 − e^x) for x < 0."""
    return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def relu(x):
    return np.maximum(x, 0.0)


# ------------------------------------------------------------------------------ per-record formulas
# Each takes (h, r) with h the hyperparameters and r a dict of per-record arrays: lw, ll (policy
# log-probs), gw, gl (log-ratios to π_ref), nw, nl (lengths), gap (r_w − r_l).
def _delta(r):
    return r["gw"] - r["gl"]


def _bpo(h, r):
    z = h["beta"] * _delta(r)
    if h.get("clip_min") is not None or h.get("clip_max") is not None:
        low = -np.log(h["clip_max"]) if h.get("clip_max") is not None else -np.inf
        high = -np.log(h["clip_min"]) if h.get("clip_min") is not None else np.inf
        z = np.clip(z, low, high)
    kind, lam = h.get("h", "lr"), h.get("lam")
    if kind == "lr":
        return sp(-z)
    if kind == "kliep":
        return np.exp(-z) - z
    if kind == "lsif":
        return np.exp(-2 * z) - 2 * np.exp(z)
    return np.exp(-(lam + 1) * z) - (lam + 1) / lam * np.exp(lam * z)


def _sba(h, r):
    z, lam, s = h["beta"] * _delta(r), h.get("lam", -0.5), h.get("s", 4.0)
    if lam == 0:
        return (np.exp(-z) - z) / s
    return np.exp(-(lam + 1) * z) / (s * (lam + 1)) - np.exp(lam * z) / (s * lam)


def _fdpo_score(g, divergence, alpha):
    return {"reverse_kl": g, "forward_kl": -np.exp(-g), "alpha": -np.exp(-alpha * g) / alpha,
            "js": -sp(-g)}[divergence]


def _fdpo(h, r):
    div, alpha = h.get("divergence", "reverse_kl"), h.get("alpha", 0.5)
    return sp(-h["beta"] * (_fdpo_score(r["gw"], div, alpha) - _fdpo_score(r["gl"], div, alpha)))


def _fpo_term(log_q, log_t, div, alpha):
    q, t = np.exp(log_q), np.exp(log_t)
    if div == "alpha":
        return (q ** (1 - alpha) * t ** alpha - (1 - alpha) * q - alpha * t) / (alpha * (alpha - 1))
    if div == "reverse_kl":
        return q * (log_q - log_t) - q + t
    if div == "forward_kl":
        return q - t - t * (log_q - log_t)
    if div == "js":
        mix = (q + t) / 2
        return 0.5 * q * (log_q - log_t) - mix * (np.log(mix) - log_t)
    if div == "jeffreys":
        return (q - t) * (log_q - log_t)
    return (np.sqrt(q) - np.sqrt(t)) ** 2


def _fpo(h, r):
    z, eps = h["beta"] * _delta(r), h.get("eps", np.exp(-10.0))
    div, alpha = h.get("divergence", "alpha"), h.get("alpha", 0.1)
    return (_fpo_term(-sp(-z), np.log1p(-eps), div, alpha) + _fpo_term(-sp(z), np.log(eps), div, alpha))


def _exo(h, r):
    z, eps = h["beta"] * _delta(r), h.get("eps", 1e-3)
    log_q, log_p = -sp(-z), -sp(z)
    return np.exp(log_q) * (log_q - np.log1p(-eps)) + np.exp(log_p) * (log_p - np.log(eps))


def _reward_targets(h, r):
    """(log t_w, log t_l) = log σ(±(r_w − r_l)/β_r): the list modes' two-response targets."""
    d = r["gap"] / h.get("beta_reward", 0.5)
    return -sp(-d), -sp(d)


def _fpo_exact(h, r):
    z, (tw, tl) = h["beta"] * _delta(r), _reward_targets(h, r)
    div, alpha = h.get("divergence", "alpha"), h.get("alpha", 0.1)
    return _fpo_term(-sp(-z), tw, div, alpha) + _fpo_term(-sp(z), tl, div, alpha)


def _exo_list(h, r):
    z, (tw, tl) = h["beta"] * _delta(r), _reward_targets(h, r)
    log_q, log_p = -sp(-z), -sp(z)
    return np.exp(log_q) * (log_q - tw) + np.exp(log_p) * (log_p - tl)


def _sppo(h, r):
    """Square loss onto Hedge's log-ratio: hard (g_w − η/2)² + (g_l + η/2)²; single
    ½[(g_w − η(P − ½))² + (g_l + η(P − ½))²], P = σ(r_w − r_l); soft ½[(g_w − η(P_w − ½))² +
    (g_l − η(P_l − ½))²], P_y = Σ_y′ π_ref(y′)σ(r_y − r_y′) (η = 1/β)."""
    eta, mode = 1 / h["beta"], h.get("mode", "soft")
    if mode == "hard":
        return (r["gw"] - eta / 2) ** 2 + (r["gl"] + eta / 2) ** 2
    if mode == "single":
        shift = eta * (expit(r["gap"]) - 0.5)
        return 0.5 * ((r["gw"] - shift) ** 2 + (r["gl"] + shift) ** 2)
    return 0.5 * ((r["gw"] - eta * (r["win_w"] - 0.5)) ** 2 + (r["gl"] - eta * (r["win_l"] - 0.5)) ** 2)


def _alpha_dpo(h, r):
    """sp(−(β·Δ̄_π − γ − αβ·ζ)), Δ̄_π = ℓ_w/|y_w| − ℓ_l/|y_l|, ζ the frozen standardised margin."""
    policy = r["lw"] / r["nw"] - r["ll"] / r["nl"]
    return sp(-(h["beta"] * policy - h.get("gamma", 1.5) - h.get("alpha", 0.2) * h["beta"] * h["state"]["zeta"]))


def _kto(h, r):
    z0, beta = h["state"]["z0"], h["beta"]
    return (h.get("lam_desirable", 1.0) * expit(-beta * (r["gw"] - z0))
            + h.get("lam_undesirable", 1.0) * expit(-beta * (z0 - r["gl"])))


def _bco(h, r):
    delta = h["state"]["delta"] if isinstance(h.get("delta", "running"), str) else h["delta"]
    return sp(delta - h["beta"] * r["gw"]) + sp(h["beta"] * r["gl"] - delta)


def _alpha_dpo_state(h, r, w):
    """ζ_i = (M_i − m)/s, M = Δ̄_π − Δ̄_ref, m and s the weighted mean and population std of M (ζ = 0 if s = 0)."""
    gap = (r["lw"] - r["rw"]) / r["nw"] - (r["ll"] - r["rl"]) / r["nl"]
    mean = (w * gap).sum()
    std = np.sqrt((w * (gap - mean) ** 2).sum())
    return {"zeta": (gap - mean) / std if std > 0 else np.zeros_like(gap)}


def _bco_state(h, r, w):
    """running: δ = Σ w·β(g_w + g_l)/2; free: δ = argmin_δ Σ w·[sp(δ − βg_w) + sp(βg_l − δ)] (Brent)."""
    a, b = h["beta"] * r["gw"], h["beta"] * r["gl"]
    if h.get("delta", "running") == "running":
        return {"delta": (w * (a + b)).sum() / 2}
    slope = lambda d: (w * (expit(d - a) - expit(b - d))).sum()  # noqa: E731
    low, high = min(a.min(), b.min()) - 50, max(a.max(), b.max()) + 50
    return {"delta": brentq(slope, low, high, xtol=1e-14, rtol=1e-15)}


STATES = {
    "alpha_dpo": _alpha_dpo_state,
    "kto": lambda h, r, w: {"z0": max(0.0, (w * (r["gw"] + r["gl"])).sum() / 2)},
    "bco": _bco_state,
}
"""Population state of the stateful losses from the record arrays and normalised record weights w;
the population objective is a fixed point: π minimises F(·; state(π))."""


def _token_terms(h, gaps, live):
    return np.where(live, sp(-h["beta"] * gaps), 0.0)


def _ld_dpo(h, r):
    shared = np.minimum(r["Tw"], r["Tl"])[:, None]
    weight = np.where(np.arange(r["dw"].shape[1]) < shared, 1.0, h["alpha"])
    return sp(-h["beta"] * (weight * (r["dw"] - r["dl"])).sum(1))


def _segments(d, steps, m):
    """S_i = Σ δ_t over steps t with ⌊t·m/T⌋ = i (the last segment takes the clamp), ``[N, m]``."""
    segment = np.minimum(np.floor(np.arange(d.shape[1]) * m / steps[:, None]), m - 1)
    return np.stack([(d * (segment == i)).sum(1) for i in range(m)], 1)


def _autoregressive_dpo(h, r):
    m = h.get("segments", 0)
    if m == 0:
        live = np.arange(r["dw"].shape[1]) < np.maximum(r["Tw"], r["Tl"])[:, None]
        return _token_terms(h, r["dw"] - r["dl"], live).sum(1)
    return sp(-h["beta"] * (_segments(r["dw"], r["Tw"], m) - _segments(r["dl"], r["Tl"], m))).sum(1)


def _d3po(h, r):
    horizon = np.maximum(r["Tw"], r["Tl"])
    live = np.arange(r["dw"].shape[1]) < horizon[:, None]
    return _token_terms(h, r["dw"] - r["dl"], live).sum(1) / horizon


LAMBDA_PAIR = 1 / np.log(2) - 1 / np.log(3)
"""LiPO/RankDPO's DCG weight of a two-item list: |G₁ − G₂|·|1/ln 2 − 1/ln 3| with G = 2^ψ − 1, ψ = (1, 0)."""


def _alpha_po(h, r):
    score_w, score_l = r["lw"], r["ll"]
    if h.get("length_normalized", False):
        score_w, score_l = r["lw"] / r["nw"], r["ll"] / r["nl"]
    alpha = h.get("alpha", 0.0)
    reward = (lambda s: s) if alpha == 0 else (lambda s: -np.expm1(-alpha * s) / alpha)
    out = sp(-(h["beta"] * (reward(score_w) - reward(score_l)) - h.get("gamma", 0.0)))
    return out - h.get("nll_weight", 0.0) * r["lw"] / r["nw"]


def _madpo(h, r):
    gap = r["gap"]
    c_max, c_min, lam, tau = h.get("c_max", 2.0), h.get("c_min", 0.5), h.get("lam", 1.0), h.get("tau", 2.0)
    c = c_min + (c_max - c_min) / (1 + (c_max - 1) / (1 - c_min) * np.exp(lam * (np.abs(gap) - tau)))
    weight = np.where(gap > -tau, expit(c * gap) / expit(gap), 1.0)
    return weight * sp(-h["beta"] * _delta(r))


def _orpo(h, r):
    mw, ml = r["lw"] / r["nw"], r["ll"] / r["nl"]
    return -mw + h.get("lam", 0.1) * sp(-((mw - log1mexp(mw)) - (ml - log1mexp(ml))))


FORMULAS = {
    "dpo": lambda h, r: sp(-h["beta"] * _delta(r)),
    "ipo": lambda h, r: ((r["gw"] / r["nw"] - r["gl"] / r["nl"] if h.get("length_normalized") else _delta(r))
                         - 1 / (2 * h["beta"])) ** 2,
    "hinge": lambda h, r: relu(1 - h["beta"] * (r["lw"] - r["ll"] if h.get("reference_free") else _delta(r))),
    "cdpo": lambda h, r: (1 - h["eps"]) * sp(-h["beta"] * _delta(r)) + h["eps"] * sp(h["beta"] * _delta(r)),
    "rdpo": lambda h, r: ((1 - h["eps"]) * sp(-h["beta"] * _delta(r)) - h["eps"] * sp(h["beta"] * _delta(r)))
    / (1 - 2 * h["eps"]),
    "simpo": lambda h, r: sp(-(h["beta"] * (r["lw"] / r["nw"] - r["ll"] / r["nl"]) - h["gamma"])),
    "sigmoid_norm": lambda h, r: sp(-h["beta"] * (r["gw"] / r["nw"] - r["gl"] / r["nl"])),
    "r_dpo": lambda h, r: sp(-(h["beta"] * _delta(r) + h["alpha"] * (r["nw"] - r["nl"]))),
    "orpo": _orpo,
    "cpo": lambda h, r: sp(-h["beta"] * (r["lw"] - r["ll"])) - h["alpha"] * r["lw"] / r["nw"],
    "alpha_po": _alpha_po,
    "asft": lambda h, r: -(1 + h["lam"]) * r["lw"] / r["nw"] - h["lam"] * log1mexp(r["ll"] / r["nl"]),
    "discopop": lambda h, r: ((1 - expit(h["beta"] * _delta(r) / h["tau"])) * sp(-h["beta"] * _delta(r))
                              + expit(h["beta"] * _delta(r) / h["tau"]) * np.exp(-h["beta"] * _delta(r))),
    "tan_principled": lambda h, r: -(h["beta"] * _delta(r)) * np.exp(-(h["beta"] * _delta(r))),
    "bpo": _bpo,
    "sba": _sba,
    "fdpo": _fdpo,
    "fpo": lambda h, r: _fpo_exact(h, r) if h.get("mode") == "exact" else _fpo(h, r),
    "exo": lambda h, r: _exo_list(h, r) if h.get("mode") == "list" else _exo(h, r),
    "apo_zero": lambda h, r: 1 - expit(h["beta"] * r["gw"]) + expit(h["beta"] * r["gl"]),
    "apo_down": lambda h, r: expit(h["beta"] * r["gw"]) + 1 - expit(h["beta"] * _delta(r)),
    "nca": lambda h, r: sp(-h["beta"] * r["gw"]) + 0.5 * sp(h["beta"] * r["gw"]) + 0.5 * sp(h["beta"] * r["gl"]),
    "cal_dpo": lambda h, r: sp(-_delta(r)) + h["calib_weight"] * ((r["gw"] - 0.5 / h["beta"]) ** 2
                                                                  + (r["gl"] + 0.5 / h["beta"]) ** 2),
    "dpop": lambda h, r: sp(-h["beta"] * (_delta(r) - h["lam"] * relu(-r["gw"]))),
    "minor_dpo": lambda h, r: sp(-h["beta"] * (r["gw"] - relu(r["gl"]))),
    "rpo": lambda h, r: sp(-h["beta"] * _delta(r)) - h["alpha"] * (r["lw"] / r["nw"] if h.get("variant", "pang") == "pang"
                                                                    else r["lw"]),
    "spo": lambda h, r: sp(-h["beta"] * _delta(r)) + h["lam"] * relu(-(r["gw"] / r["nw"] if h.get("reading") == "vf"
                                                                       else r["gw"])),
    "flex_dpo": lambda h, r: sp(-(h["beta_plus"] * r["gw"] - h["beta_minus"] * r["gl"])),
    "madpo": _madpo,
    "da_dpo": lambda h, r: sp(-h["beta"] * h.get("alpha_db", 1.0) * (1 + np.abs(r["gap"])) * _delta(r)),
    "ddo": lambda h, r: sp(-h["beta"] * r["gw"]) + h["alpha"] * sp(h["beta"] * r["gl"]),
    "disco": lambda h, r: (r["ll"] / r["nl"] - r["lw"] / r["nw"]) if h.get("length_normalized", True)
    else r["ll"] - r["lw"],
    "sppo": _sppo,
    # list losses as a list of two (chosen, rejected), labels ψ = (1, 0) by position
    "plackett_luce": lambda h, r: sp(-h["beta"] * _delta(r)),
    "lipo": lambda h, r: LAMBDA_PAIR * sp(-h["beta"] * _delta(r)),
    "rank_dpo": lambda h, r: LAMBDA_PAIR * sp(-h["beta"] * _delta(r)),
    "tpo": lambda h, r: sp(-h["beta"] * _delta(r)),
    "irpo": lambda h, r: sp(-h["beta"] * _delta(r)),
    "anchored_dpo": lambda h, r: sp(-_delta(r) / h["tau"]),
    "curry_dpo": lambda h, r: sp(-h["beta"] * _delta(r)),
    # stateful losses (h["state"] from STATES at the fixed point)
    "alpha_dpo": _alpha_dpo,
    "kto": _kto,
    "bco": _bco,
    "beta_dpo": lambda h, r: sp(-h["beta"] * _delta(r)),  # full-batch state: β_batch = β₀, nothing dropped
    # token-level losses: r["dw"], r["dl"] the per-step log-ratios δ_t [N, T] (0 on padding), r["Tw"], r["Tl"] steps
    "token_dpo": lambda h, r: sp(-h["beta"] * (r["dw"] - r["dl"]).sum(1)),
    "ld_dpo": _ld_dpo,
    "autoregressive_dpo": _autoregressive_dpo,
    "d3po": _d3po,
}
"""Per-record losses by registered name."""
KINKED = {"dpop", "spo", "minor_dpo", "hinge"}
"""Losses with relu kinks (the reference then polishes with Powell)."""


# ------------------------------------------------------------------------------ population
def records(ref_logp, reward, prompt_weights, pair_dist):
    """(prompt, chosen, rejected, weight) of the population: D(x,a,b) = ρ(x)·w_ab·σ(r_a − r_b)."""
    P, Y = ref_logp.shape
    ref = np.exp(ref_logp)
    mu = ref[:, :, None] * ref[:, None, :] if pair_dist == "ref" else np.ones((P, Y, Y))
    mu = mu * (1 - np.eye(Y))
    mu = mu / mu.sum((1, 2), keepdims=True)
    table = prompt_weights[:, None, None] * (mu + mu.transpose(0, 2, 1)) * expit(reward[:, :, None] - reward[:, None, :])
    prompt, chosen, rejected = np.nonzero(table > 0)
    return prompt, chosen, rejected, table[prompt, chosen, rejected]


class TokenViews:
    """Per-step conditional log-probs of strings: response y = tokens (y₁..y_k) then EOS; step t < k
    has log π(y_{t+1}|y_{≤t}) = log M(y_{≤t+1}) − log M(y_{≤t}), the EOS step log π(y) − log M(y),
    with M(s) = Σ of π over the strings that start with the tokens s (M(∅) = Σπ)."""

    def __init__(self, strings):
        self.steps = np.array([len(y) + 1 for y in strings], dtype=float)
        T, Y = int(self.steps.max()), len(strings)
        starts = lambda prefix: np.array([z[:len(prefix)] == prefix for z in strings], float)  # noqa: E731
        self.num, self.den = np.zeros((Y, T, Y)), np.zeros((Y, T, Y))
        self.mask = np.zeros((Y, T), bool)
        for y, tokens in enumerate(strings):
            for t in range(len(tokens) + 1):
                self.num[y, t] = starts(tokens[:t + 1]) if t < len(tokens) else np.eye(Y)[y]
                self.den[y, t] = starts(tokens[:t])
                self.mask[y, t] = True

    def __call__(self, logp):
        """δ-ready conditional log-probs ``[P, Y, T]`` (0 on padding) of a log-prob table ``[P, Y]``."""
        table = logp[:, None, None, :]
        num = logsumexp(table, b=self.num[None], axis=-1)
        den = logsumexp(table, b=self.den[None], axis=-1)
        return np.where(self.mask[None], num - np.where(self.mask[None], den, 0.0), 0.0)


class Objective:
    """F(s) = Σ_records D·L over logits s ``[P·Y]`` for one loss (NumPy)."""

    def __init__(self, name, hyper, ref_logp, reward, prompt_weights, pair_dist, lengths, strings=None):
        self.name, self.formula, self.hyper = name, FORMULAS[name], hyper
        self.ref, self.shape = ref_logp, ref_logp.shape
        self.prompt, self.chosen, self.rejected, self.weight = records(ref_logp, reward, prompt_weights, pair_dist)
        self.fixed = {"nw": lengths[self.chosen], "nl": lengths[self.rejected],
                      "gap": reward[self.prompt, self.chosen] - reward[self.prompt, self.rejected],
                      "rw": ref_logp[self.prompt, self.chosen], "rl": ref_logp[self.prompt, self.rejected]}
        self.tokens = None if strings is None else TokenViews(strings)
        if self.tokens is not None:
            self.ref_tokens = self.tokens(ref_logp)
            self.fixed.update(Tw=self.tokens.steps[self.chosen], Tl=self.tokens.steps[self.rejected])
        win = (np.exp(ref_logp)[:, None, :] * expit(reward[:, :, None] - reward[:, None, :])).sum(-1)
        self.fixed.update(win_w=win[self.prompt, self.chosen], win_l=win[self.prompt, self.rejected])

    def logp(self, s):
        s = np.asarray(s, dtype=float).reshape(self.shape)
        return s - logsumexp(s, axis=-1, keepdims=True)

    def __call__(self, s):
        return self.at(self.logp(s))

    def inputs(self, logp):
        logp = np.asarray(logp, dtype=float).reshape(self.shape)
        lw, ll = logp[self.prompt, self.chosen], logp[self.prompt, self.rejected]
        r = dict(self.fixed, lw=lw, ll=ll, gw=lw - self.fixed["rw"], gl=ll - self.fixed["rl"])
        if self.tokens is not None:
            delta = self.tokens(logp) - self.ref_tokens
            r.update(dw=delta[self.prompt, self.chosen], dl=delta[self.prompt, self.rejected])
        return r

    def at(self, logp):
        """F at a log-prob table ``[P, Y]``, normalised or not (margin losses only see differences)."""
        with np.errstate(all="ignore"):
            value = float((self.weight * self.formula(self.hyper, self.inputs(logp))).sum())
        return value if np.isfinite(value) else np.inf

    def state(self, logp):
        """The population state at ``logp`` (stateful losses; None otherwise)."""
        if self.name not in STATES:
            return None
        with np.errstate(all="ignore"):
            return STATES[self.name](self.hyper, self.inputs(logp), self.weight / self.weight.sum())

    def with_state(self, state):
        """A copy whose formula reads ``state`` (held fixed)."""
        fixed = object.__new__(Objective)
        fixed.__dict__.update(self.__dict__, hyper=dict(self.hyper, state=state))
        return fixed


UNBOUNDED = -1e3
"""A reference value below this (objectives here have total record weight 1) that keeps falling
along the run's direction means unbounded."""


def minimise(objective, seed, starts=4, kinked=False):
    """(best value, best log-probs, unbounded?) from BFGS (finite differences) at ``starts``
    starts (π_ref, uniform, random N(0, 2²) logits from ``seed``), then, for a ``kinked``
    objective, Powell from the best."""
    with np.errstate(all="ignore"):    # SciPy's finite differences of an objective that reached +inf
        return _minimise(objective, seed, starts, kinked)


def _minimise(objective, seed, starts, kinked):
    rng = np.random.default_rng(seed)
    size = objective.ref.size
    points = [objective.ref.reshape(-1), np.zeros(size)] + [2 * rng.standard_normal(size) for _ in range(starts - 2)]
    best = None
    for x0 in points:
        found = minimize(objective, x0, method="BFGS", options={"gtol": 1e-8, "maxiter": 300})
        if best is None or found.fun < best.fun:
            best = found
        if found.fun < UNBOUNDED and _keeps_falling(objective, x0, found.x) or _recedes(objective, x0, found.x):
            return -np.inf, None, True
    end = best
    if kinked:
        polished = minimize(objective, best.x, method="Powell", options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 6000})
        end = polished if polished.fun < best.fun else best
    return float(end.fun), objective.logp(end.x), False


def _keeps_falling(objective, start, end):
    """Past a value below UNBOUNDED, the objective still falls at every step along end − start
    (steps 1, 2, 4, 8 in its max-abs norm): a run that is going to −∞, not a deep finite minimum
    (bpo's Basu family with λ = 2 has finite minima below −1e3 on well-separated rewards)."""
    direction = end - start
    if not np.all(np.isfinite(direction)) or np.abs(direction).max() == 0:
        return False
    direction = direction / np.abs(direction).max()
    values = [objective(end)] + [objective(end + t * direction) for t in (1, 2, 4, 8)]
    return bool(np.all(np.isfinite(values)) and np.all(np.diff(values) < 0))


def _recedes(objective, start, end):
    """The objective keeps falling linearly along end − start out to 1e5 (an unbounded run)."""
    direction = end - start
    if not np.all(np.isfinite(direction)) or np.abs(direction).max() < 1:
        return False
    direction = direction / np.abs(direction).max()
    values = [objective(end + t * direction) for t in (1e2, 1e3, 1e4, 1e5)]
    return bool(np.all(np.isfinite(values)) and np.all(np.diff(values) < 0) and values[-1] < UNBOUNDED)
