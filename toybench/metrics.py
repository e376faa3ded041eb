"""Metrics: pure functions of exact log-prob tables, float64, batched over leading axes.

Definitions are collected in docs/conventions.md (Metrics). Inputs are log-prob tables
``[..., P, Y]`` (any leading axes, e.g. the run axis ``[B, P, Y]``, or none: ``[P, Y]``);
a −inf entry is a response with zero mass and is handled exactly (0·log 0 = 0). Per-prompt
values are averaged with ``prompt_weights`` ρ ``[P]`` (default uniform, or the Problem's ρ where
a Problem or Pairs is given): ``per_prompt=False`` gives ``[...]``, ``per_prompt=True``
gives ``[..., P]``. Record metrics (displacement, accuracies) average over records with the
normalised record weights ω̄_k = ω_k / Σ_j ω_j. Symbols: π = exp(logp), π_ref the reference,
r the reward, P(y ≻ y') the preference, (x_k, w_k, l_k) the records (prompt, chosen, rejected).

Evidence: KL, TV, entropy, expected reward and the exact win rate are standard definitions
([derived] exact sums); ranking accuracy and likelihood displacement follow the cited papers'
definitions as the papers state them ([paper]); the tie conventions and
``max_unseen_gain`` on an empty set are conventions chosen here (stated where used).
"""
from __future__ import annotations

import torch

from ._numerics import flat_index
from .objective import objective

NORMALISATION_TOL = 1e-4
"""|logsumexp(row)| allowed for a log-prob table: float32 policy tables cast to float64 are off by ~1e-6."""


# ---------------------------------------------------------------- validation and reduction
def _table(logp, name: str) -> torch.Tensor:
    """``logp`` as float64 ``[..., P, Y]``: no NaN, no +inf, rows that normalise."""
    try:
        table = torch.as_tensor(logp).to(torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a log-prob table [..., P, Y], got {type(logp).__name__}") from err
    if table.ndim < 2 or table.shape[-1] == 0 or table.shape[-2] == 0:
        raise ValueError(f"{name} must be a log-prob table [..., P, Y], got shape {tuple(table.shape)}")
    if torch.isnan(table).any() or (table == torch.inf).any():
        raise ValueError(f"{name} must hold log-probabilities (finite or -inf); found NaN or +inf")
    row_error = torch.logsumexp(table, dim=-1).abs().max().item()
    if not row_error <= NORMALISATION_TOL:
        raise ValueError(f"{name} rows must normalise (logsumexp = 0 within {NORMALISATION_TOL}); "
                         f"the worst row is off by {row_error:.3g}")
    return table


def _same_grid(first: torch.Tensor, second: torch.Tensor, names: str) -> None:
    """ValueError unless two tables are ``[..., P, Y]`` with equal P, Y and broadcastable leading axes."""
    problem = (f"{names} must both be [..., P, Y] with the same P, Y and broadcastable leading axes; "
               f"got shapes {tuple(first.shape)} and {tuple(second.shape)}")
    # broadcastable leading axes, checked by hand: torch.broadcast_shapes imports sympy (seconds) on first use
    leading = zip(reversed(first.shape[:-2]), reversed(second.shape[:-2]), strict=False)   # shorter one: implicit 1s
    if second.ndim < 2 or first.shape[-2:] != second.shape[-2:] or any(1 != a != b != 1 for a, b in leading):
        raise ValueError(problem)


def _weights(prompt_weights, P: int, like: torch.Tensor) -> torch.Tensor:
    """ρ ``[P]`` normalised to sum one (uniform when None)."""
    if prompt_weights is None:
        return torch.full((P,), 1.0 / P, dtype=torch.float64, device=like.device)
    rho = torch.as_tensor(prompt_weights, dtype=torch.float64).to(like.device)
    if rho.shape != (P,) or not torch.isfinite(rho).all() or (rho < 0).any() or rho.sum() <= 0:
        raise ValueError(f"prompt_weights must be {P} non-negative finite numbers with a positive sum, "
                         f"got shape {tuple(rho.shape)}")
    return rho / rho.sum()


def _reduce(per_prompt_values: torch.Tensor, prompt_weights, per_prompt: bool) -> torch.Tensor:
    """``[..., P]`` → ``[...]`` as Σ_x ρ_x·v_x (a prompt with ρ_x = 0 adds 0, even where v_x = inf)."""
    if not isinstance(per_prompt, bool):
        raise ValueError(f"per_prompt must be True or False, got {per_prompt!r}")
    if per_prompt:
        return per_prompt_values
    return _average(per_prompt_values, _weights(prompt_weights, per_prompt_values.shape[-1], per_prompt_values))


def _average(per_prompt_values: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """Σ_x ρ_x·v_x over the last axis for normalised weights ρ ``[P]``."""
    return torch.where(rho > 0, rho * per_prompt_values, torch.zeros_like(per_prompt_values)).sum(-1)


def _response_table(values, name: str, like: torch.Tensor) -> torch.Tensor:
    """A finite float64 ``[..., P, Y]`` table (reward) matching ``like``'s P, Y."""
    table = torch.as_tensor(values, dtype=torch.float64).to(like.device)
    _same_grid(like, table, f"logp and {name}")
    if not torch.isfinite(table).all():
        raise ValueError(f"{name} must be finite")
    return table


# ---------------------------------------------------------------- distributional metrics
def kl(p_logp, q_logp, *, prompt_weights=None, per_prompt=False) -> torch.Tensor:
    """KL_x(p‖q) = Σ_y p(y|x)·[log p(y|x) − log q(y|x)], summed where p > 0 (0·log 0 = 0);
    +inf where p > 0 = q. ρ-averaged over prompts.

    Direction: with π the policy and π* a target, ``kl(pi, pistar)`` = KL(π‖π*) is the
    **reverse** KL (mode-seeking; ``kl(pi, ref)`` is the RLHF regulariser KL(π‖π_ref)) and
    ``kl(pistar, pi)`` = KL(π*‖π) the **forward** KL (mass-covering; +inf when π drops a
    response π* keeps)."""
    p, q = _table(p_logp, "p_logp"), _table(q_logp, "q_logp")
    _same_grid(p, q, "p_logp and q_logp")
    return _reduce(_kl(p, q), prompt_weights, per_prompt)


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL per prompt ``[..., P]`` of two checked tables."""
    return torch.where(p == -torch.inf, torch.zeros_like(p), p.exp() * (p - q)).sum(-1)


def tv(p_logp, q_logp, *, prompt_weights=None, per_prompt=False) -> torch.Tensor:
    """Total variation TV_x = ½·Σ_y |p(y|x) − q(y|x)|, ρ-averaged."""
    p, q = _table(p_logp, "p_logp"), _table(q_logp, "q_logp")
    _same_grid(p, q, "p_logp and q_logp")
    return _reduce(_tv(p, q), prompt_weights, per_prompt)


def _tv(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return 0.5 * (p.exp() - q.exp()).abs().sum(-1)


def entropy(logp, *, prompt_weights=None, per_prompt=False) -> torch.Tensor:
    """Shannon entropy H_x(π) = −Σ_y π(y|x)·log π(y|x) in nats, 0·log 0 = 0."""
    return _reduce(_entropy(_table(logp, "logp")), prompt_weights, per_prompt)


def _entropy(table: torch.Tensor) -> torch.Tensor:
    return -torch.where(table == -torch.inf, torch.zeros_like(table), table.exp() * table).sum(-1)


def expected_reward(logp, reward, *, prompt_weights=None, per_prompt=False) -> torch.Tensor:
    """R(π) = Σ_x ρ_x Σ_y π(y|x)·r(x, y), ``reward`` ``[P, Y]``."""
    table = _table(logp, "logp")
    return _reduce(_expected_reward(table, _response_table(reward, "reward", table)), prompt_weights, per_prompt)


def _expected_reward(table: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    return (table.exp() * reward).sum(-1)


def win_rate(logp, ref_logp, preference, *, prompt_weights=None, per_prompt=False) -> torch.Tensor:
    """Exact win rate W(π, π') = Σ_x ρ_x Σ_{y,y'} π(y|x)·π'(y'|x)·P(y ≻ y'|x): the probability
    that a draw from π beats an independent draw from the opponent π' (``ref_logp``, usually
    π_ref) under the true preference ``preference`` ``[P, Y, Y]`` (e.g. ``prob.preference_matrix()``;
    under BT, P = σ(r − r')). W(π_ref, π_ref) = ½ whenever P + Pᵀ = 1."""
    table, opponent = _table(logp, "logp"), _table(ref_logp, "ref_logp")
    _same_grid(table, opponent, "logp and ref_logp")
    P, Y = table.shape[-2:]
    pref = torch.as_tensor(preference, dtype=torch.float64).to(table.device)
    if pref.shape != (P, Y, Y):
        raise ValueError(f"preference must have shape [{P}, {Y}, {Y}] (P(y ≻ y'|x)), got {tuple(pref.shape)}")
    if not torch.isfinite(pref).all() or (pref < 0).any() or (pref > 1).any():
        raise ValueError("preference entries must be probabilities in [0, 1]")
    return _reduce(_win_rate(table, opponent, pref), prompt_weights, per_prompt)


def _win_rate(table: torch.Tensor, opponent: torch.Tensor, pref: torch.Tensor) -> torch.Tensor:
    return torch.einsum("...py,pyz,...pz->...p", table.exp(), pref, opponent.exp())


def mass_on_best(logp, reward, *, prompt_weights=None, per_prompt=False) -> torch.Tensor:
    """Σ_{y ∈ argmax_y r(x,y)} π(y|x): the probability of a best response; tied maximisers
    (exactly equal rewards) all count. ρ-averaged."""
    table = _table(logp, "logp")
    return _reduce(_mass_on_best(table, _response_table(reward, "reward", table)), prompt_weights, per_prompt)


def _mass_on_best(table: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    return (table.exp() * (reward == reward.amax(-1, keepdim=True))).sum(-1)


def top_responses(logp, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most likely responses of each prompt: (indices int64, probabilities float64),
    each ``[..., P, k]``, most likely first; equal probabilities keep the lower index first."""
    table = _table(logp, "logp")
    Y = table.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= Y:
        raise ValueError(f"k must be an integer in 1..{Y} (the number of responses), got {k!r}")
    order = torch.sort(table, dim=-1, descending=True, stable=True)
    return order.indices[..., :k], order.values[..., :k].exp()


# ---------------------------------------------------------------- record metrics
def _check_pairs(pairs, table: torch.Tensor, name: str) -> None:
    prob = getattr(pairs, "problem", None)
    if prob is None or not hasattr(pairs, "weight"):
        raise ValueError(f"pairs must be a toybench Pairs, got {type(pairs).__name__}")
    if tuple(table.shape[-2:]) != (prob.P, prob.Y):
        raise ValueError(f"{name} has shape {tuple(table.shape)} but the records' problem has "
                         f"P={prob.P} prompts and Y={prob.Y} responses")
    if pairs.runs > 1 and table.shape[:-2] not in ((), (1,), (pairs.runs,)):
        raise ValueError(f"pairs carry per-run records for B={pairs.runs} runs, so {name} must be [P, Y], "
                         f"[1, P, Y] or [{pairs.runs}, P, Y]; got {tuple(table.shape)}")


def _gather(table: torch.Tensor, pairs, responses: torch.Tensor) -> torch.Tensor:
    """log π(y_k|x_k) per record: ``[..., N]`` for shared records, ``[B, N]`` for per-run ones."""
    Y = table.shape[-1]
    index = flat_index(pairs.prompt, responses, Y).to(table.device)
    flat = table.flatten(-2)
    if pairs.runs == 1:
        return flat[..., index[0]]
    flat = flat.reshape(-1, flat.shape[-1]).expand(pairs.runs, -1)
    return flat.gather(1, index.expand(pairs.runs, -1))


def _record_mean(values: torch.Tensor, pairs) -> torch.Tensor:
    """Σ_k ω̄_k·v_k over the last (record) axis; a record with ω_k = 0 adds 0."""
    weight = pairs.weight.to(device=values.device, dtype=torch.float64)
    weight = weight / weight.sum(-1, keepdim=True)
    weight = weight[0] if pairs.runs == 1 else weight
    return torch.where(weight > 0, weight * values, torch.zeros_like(values)).sum(-1)


def _pair_accuracy(chosen: torch.Tensor, rejected: torch.Tensor, pairs, tie_credit) -> torch.Tensor:
    if isinstance(tie_credit, bool) or not isinstance(tie_credit, (int, float)) or not 0 <= tie_credit <= 1:
        raise ValueError(f"tie_credit must be a number in [0, 1] (credit for an exact tie), got {tie_credit!r}")
    score = (chosen > rejected).to(torch.float64) + tie_credit * (chosen == rejected).to(torch.float64)
    return _record_mean(score, pairs)


def ranking_accuracy(logp, pairs, *, tie_credit=1.0) -> torch.Tensor:
    """RA = Σ_k ω̄_k·(1[log π(w_k) > log π(l_k)] + c·1[log π(w_k) = log π(l_k)]), ``[...]``.

    Ranking accuracy of Chen et al., arXiv 2405.19534 [paper]. Ties count as correct
    (c = ``tie_credit`` = 1) as in Chen et al., arXiv 2405.19534, §2.5, which makes Thm 4.1 an exact
    equivalence; ``tie_credit=0.5`` counts a tie as half."""
    table = _table(logp, "logp")
    _check_pairs(pairs, table, "logp")
    return _pair_accuracy(_gather(table, pairs, pairs.chosen), _gather(table, pairs, pairs.rejected),
                          pairs, tie_credit)


def implicit_reward_accuracy(logp, ref_logp, pairs, *, tie_credit=0.0) -> torch.Tensor:
    """IA = Σ_k ω̄_k·(1[g(w_k) > g(l_k)] + c·1[g(w_k) = g(l_k)]) with the implicit reward
    g = log π − log π_ref (what DPO trainers log). Strict by default (c = ``tie_credit`` = 0),
    so IA = 0 at π = π_ref (Chen et al., arXiv 2405.19534, §2.5)."""
    table, ref = _table(logp, "logp"), _table(ref_logp, "ref_logp")
    _same_grid(table, ref, "logp and ref_logp")
    table, ref = torch.broadcast_tensors(table, ref)
    _check_pairs(pairs, table, "logp")
    implicit = table - ref
    return _pair_accuracy(_gather(implicit, pairs, pairs.chosen), _gather(implicit, pairs, pairs.rejected),
                          pairs, tie_credit)


def _unseen(table: torch.Tensor, pairs) -> torch.Tensor:
    """1[y ∉ S_x] ``[R, P, Y]``: S_x holds every response chosen or rejected in a record at x with ω > 0."""
    P, Y = table.shape[-2:]
    seen = torch.zeros(pairs.runs, P * Y, dtype=torch.float64, device=table.device)
    positive = (pairs.weight > 0).to(device=table.device, dtype=torch.float64)
    for responses in (pairs.chosen, pairs.rejected):
        index = flat_index(pairs.prompt, responses, Y).to(table.device).expand(pairs.runs, -1)
        seen.scatter_add_(1, index, positive)
    return (seen == 0).reshape(pairs.runs, P, Y)


def displacement(logp_before, logp_after, pairs, *, prompt_weights=None) -> dict:
    """Likelihood displacement between a snapshot π_0 (``logp_before``) and π_t (``logp_after``);
    Razin et al., arXiv 2410.08847; definitions as in docs/conventions.md (Metrics). Each value ``[...]``:

    - ``chosen_logp_change`` = Σ_k ω̄_k [log π_t(w_k|x_k) − log π_0(w_k|x_k)] (a zero-mass
      response in both tables changes by 0);
    - ``rejected_logp_change``: the same with l_k;
    - ``chosen_mass_change`` = Σ_k ω̄_k [π_t(w_k|x_k) − π_0(w_k|x_k)];
    - ``displaced_fraction`` = Σ_k ω̄_k·1[log π_t(w_k) < log π_0(w_k)];
    - ``unseen_mass_gain`` = m_out(π_t) − m_out(π_0), m_out(π) = Σ_x ρ_x Σ_{y ∉ S_x} π(y|x),
      S_x the responses that appear (chosen or rejected, ω > 0) in a record at x; ρ is
      ``prompt_weights``, default the problem's. For population pairs S_x = Y, so it is 0;
    - ``max_unseen_gain`` = max_{x, y ∉ S_x} [π_t(y|x) − π_0(y|x)]; 0 when every response is
      seen (convention chosen here)."""
    before, after = _table(logp_before, "logp_before"), _table(logp_after, "logp_after")
    _same_grid(before, after, "logp_before and logp_after")
    before, after = torch.broadcast_tensors(before, after)
    _check_pairs(pairs, before, "logp_before")
    change = torch.where(after == before, torch.zeros_like(after), after - before)
    chosen_change = _gather(change, pairs, pairs.chosen)
    mass_change = after.exp() - before.exp()
    unseen = _unseen(before, pairs)
    if pairs.runs == 1:
        unseen = unseen[0]
    unseen_gain = (mass_change * unseen).sum(-1)
    rho = prompt_weights if prompt_weights is not None else pairs.problem.prompt_weights
    largest = torch.where(unseen, mass_change, torch.full_like(mass_change, -torch.inf)).amax((-1, -2))
    return {
        "chosen_logp_change": _record_mean(chosen_change, pairs),
        "rejected_logp_change": _record_mean(_gather(change, pairs, pairs.rejected), pairs),
        "chosen_mass_change": _record_mean(_gather(mass_change, pairs, pairs.chosen), pairs),
        "displaced_fraction": _record_mean((chosen_change < 0).to(torch.float64), pairs),
        "unseen_mass_gain": _reduce(unseen_gain, rho, False),
        "max_unseen_gain": torch.where(largest == -torch.inf, torch.zeros_like(largest), largest),
    }


# ---------------------------------------------------------------- optimisation and summary
def grad_norm(loss, logp, pairs) -> torch.Tensor:
    """G_b = ‖∇_s L_b(log_softmax(s))‖₂ at s = logp: the Euclidean norm, per run, of the gradient
    of the population/data-set objective L_b = Σ_k ω_k·loss_k (``toybench.objective.objective``)
    with respect to tabular logits s ``[P, Y]`` (float64 autograd). Runs
    share no parameters, so one backward pass of Σ_b L_b gives every G_b. For DPO it is ~0 at
    π*_β. ``logp`` ``[P, Y]`` or ``[B, P, Y]`` must be finite (an interior policy: a logit at −inf
    has no gradient). Returns ``[B]``, or ``[]`` for a ``[P, Y]`` table when nothing is per-run."""
    table = _table(logp, "logp")
    if table.ndim > 3:
        raise ValueError(f"grad_norm takes logp [P, Y] or [B, P, Y], got shape {tuple(table.shape)}")
    if not torch.isfinite(table).all():
        raise ValueError("grad_norm needs finite log-probs (an interior policy); logp has -inf entries")
    _check_pairs(pairs, table, "logp")
    leading = table.shape[0] if table.ndim == 3 else 1
    runs = {leading, pairs.runs, loss.runs or 1} - {1}
    if len(runs) > 1:
        raise ValueError(f"run counts disagree: logp has {leading}, pairs {pairs.runs}, loss {loss.runs}")
    B = runs.pop() if runs else 1
    with torch.enable_grad():
        logits = table.detach().reshape(-1, *table.shape[-2:]).expand(B, -1, -1).clone().requires_grad_(True)
        value = objective(loss, torch.log_softmax(logits, dim=-1), pairs)
        (grad,) = torch.autograd.grad(value.sum(), logits)
    norms = grad.flatten(1).norm(dim=1)
    return norms[0] if table.ndim == 2 and B == 1 else norms


def summary(logp, prob, target_logp=None) -> dict:
    """The main numbers for ``toybench compare`` and training histories, each ``[...]``, ρ-averaged
    with the problem's prompt weights:

    ``kl_to_ref`` = KL(π‖π_ref) (reverse, the RLHF regulariser), ``entropy``, ``win_rate`` vs π_ref
    under ``prob.preference_matrix()``; under BT also ``expected_reward`` and ``mass_on_best``; with
    a target π_tgt also ``kl_to_target`` = KL(π‖π_tgt) (reverse), ``kl_from_target`` = KL(π_tgt‖π)
    (forward) and ``tv_to_target``. The inputs are checked once; the problem's own tables are
    valid by construction."""
    table = _table(logp, "logp")
    if tuple(table.shape[-2:]) != (prob.P, prob.Y):
        raise ValueError(f"logp has shape {tuple(table.shape)} but the problem has P={prob.P}, Y={prob.Y}")
    rho = _weights(prob.prompt_weights, prob.P, table)
    to = {"device": table.device, "dtype": torch.float64}
    ref = prob.ref_logp.to(**to)
    per_prompt = {"kl_to_ref": _kl(table, ref), "entropy": _entropy(table),
                  "win_rate": _win_rate(table, ref, prob.preference_matrix().to(**to))}
    if prob.reward is not None:
        reward = prob.reward.to(**to)
        per_prompt["expected_reward"] = _expected_reward(table, reward)
        per_prompt["mass_on_best"] = _mass_on_best(table, reward)
    if target_logp is not None:
        target = _table(target_logp, "target_logp")
        _same_grid(table, target, "logp and target_logp")
        per_prompt.update(kl_to_target=_kl(table, target), kl_from_target=_kl(target, table),
                          tv_to_target=_tv(table, target))
    return {name: _average(values, rho) for name, values in per_prompt.items()}
