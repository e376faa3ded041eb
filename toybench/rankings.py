"""Rankings, lists and general preferences: the data beyond fixed pairs.

- Plackett–Luce (PL): a ranking τ of a candidate set S has probability
  PL(τ | S) = Π_k exp(r(τ_k)) / Σ_{j ≥ k} exp(r(τ_j))  (Plackett 1975; Luce 1959; the list model
  behind DPO's App. A.3, arXiv 2305.18290, and LiPO, arXiv 2402.01878, Eq. 7).
- ``Lists``: k responses per record, listed best first (``items[..., 0]`` is ranked top), with
  weights and optional per-item ``scores`` (labels); a leading axis of size 1 or B like ``Pairs``.
  ``list_population`` enumerates every ranking of every candidate set with its exact weight;
  ``sample_lists`` draws a finite data set with a seed.
- General preference matrices: ``rock_paper_scissors``, ``annotator_mixture`` (a mixture of BT
  annotators with different rewards, intransitive in general).
- Pair laws that depend on a policy: ``policy_pairs`` (μ = π ⊗ π′, e.g. on-policy sampling
  π ⊗ π), exact as records with per-run weights.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from ._checks import check_probability_rate, hyper_values
from .pairs import Pairs, _seeds, sample_pairs
from .problem import Problem
from .spaces import FlatSpace

CANDIDATE_LAWS = ("uniform", "ref")
MAX_RANKINGS = 200_000


# ------------------------------------------------------------------------------ Plackett–Luce
def pl_log_prob(scores: torch.Tensor) -> torch.Tensor:
    """log PL(τ) of lists whose scores are given in ranked order (best first), ``[..., k]`` → ``[...]``:
    Σ_k [s_k − logsumexp_{j ≥ k} s_j] (reverse cumulative logsumexp, float64-safe)."""
    tail = torch.logcumsumexp(scores.flip(-1), -1).flip(-1)
    return (scores - tail).sum(-1)


def pl_ranking_probs(reward, items) -> torch.Tensor:
    """Exact PL probability of every ordering of ``items`` (one candidate set, k responses) under
    ``reward`` ``[Y]``: ``(orderings [k!, k], probs [k!])``, orderings best first."""
    items = torch.as_tensor(items, dtype=torch.int64)
    orders = torch.tensor(list(itertools.permutations(items.tolist())), dtype=torch.int64)
    return orders, pl_log_prob(torch.as_tensor(reward, dtype=torch.float64)[orders]).exp()


def pl_sample(scores: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One PL ranking per row of ``scores`` ``[..., k]`` (positions into the row, best first), by the
    Gumbel-max trick: sorting s + Gumbel noise descending is a PL draw (Yellott 1977)."""
    uniform = torch.rand(scores.shape, generator=generator, dtype=torch.float64).clamp_min(1e-300)
    return torch.argsort(scores - torch.log(-torch.log(uniform)), dim=-1, descending=True)


# ------------------------------------------------------------------------------ the list data type
@dataclass(frozen=True, eq=False)
class Lists:
    """Ranked lists. ``prompt`` int64 ``[1 or B, N]``; ``items`` int64 ``[1 or B, N, k]`` (distinct
    responses, best first); ``weight`` float64 ``[1 or B, N]`` summing to one per run; ``scores``
    float64 like ``items`` or None (labels such as LiPO's ψ); ``problem``."""

    prompt: torch.Tensor
    items: torch.Tensor
    weight: torch.Tensor
    problem: Problem
    scores: torch.Tensor | None = None

    @property
    def runs(self) -> int:
        return self.weight.shape[0]

    @property
    def size(self) -> int:
        return self.weight.shape[1]

    @property
    def k(self) -> int:
        return self.items.shape[-1]

    @classmethod
    def from_records(cls, prob: Problem, prompts, rankings, weights=None, scores=None) -> Lists:
        """Lists from explicit records: ``prompts`` ``[N]``, ``rankings`` ``[N, k]`` (each row distinct
        responses, best first; every row the same length k — pad nothing), optional ``weights`` ``[N]``
        (normalised) and ``scores`` ``[N, k]``."""
        try:
            prompt = torch.as_tensor(prompts, dtype=torch.int64)
            items = torch.as_tensor(rankings, dtype=torch.int64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError("rankings must be a rectangular [N, k] table of response indices: lists of "
                             "different sizes need padding information, which Lists does not take") from err
        if items.ndim != 2 or prompt.shape != (items.shape[0],) or items.shape[0] == 0 or items.shape[1] < 2:
            raise ValueError(f"need prompts [N] and rankings [N, k] with N ≥ 1, k ≥ 2; got {tuple(prompt.shape)} "
                             f"and {tuple(items.shape)}")
        weight = torch.ones(len(items), dtype=torch.float64) if weights is None else \
            torch.as_tensor(weights, dtype=torch.float64)
        if weight.shape != prompt.shape or (weight < 0).any() or weight.sum() <= 0:
            raise ValueError("weights must be one non-negative number per list with a positive sum")
        if scores is not None:
            scores = torch.as_tensor(scores, dtype=torch.float64)
            if scores.shape != items.shape:
                raise ValueError(f"scores must have the rankings' shape {tuple(items.shape)}")
            scores = scores[None]
        made = cls(prompt[None], items[None], (weight / weight.sum())[None], prob, scores)
        made.validate()
        return made

    @classmethod
    def from_scores(cls, prob: Problem, prompts, items, scores, weights=None) -> Lists:
        """Lists of k scored responses (any order), ranked here by score, highest first (ties keep
        the given order); the scores travel along as labels."""
        scores = torch.as_tensor(scores, dtype=torch.float64)
        items = torch.as_tensor(items, dtype=torch.int64)
        if scores.shape != items.shape:
            raise ValueError(f"scores {tuple(scores.shape)} must match items {tuple(items.shape)}")
        order = torch.argsort(scores, dim=-1, descending=True, stable=True)
        return cls.from_records(prob, prompts, items.gather(-1, order), weights, scores.gather(-1, order))

    def validate(self) -> None:
        """ValueError unless each list is a permutation of distinct in-range responses."""
        prob = self.problem
        if (self.prompt < 0).any() or (self.prompt >= prob.P).any():
            raise ValueError(f"list prompts must lie in 0..{prob.P - 1}")
        if (self.items < 0).any() or (self.items >= prob.Y).any():
            raise ValueError(f"ranked responses must lie in 0..{prob.Y - 1}")
        ordered = self.items.sort(-1).values
        if (ordered[..., 1:] == ordered[..., :-1]).any():
            raise ValueError("a ranking must be a permutation of distinct responses (found a repeated response)")

    def pairs(self) -> Pairs:
        """Every (better, worse) pair inside each list as ``Pairs`` (k(k−1)/2 records per list, each
        with the list's weight divided by that count)."""
        first, second = zip(*itertools.combinations(range(self.k), 2), strict=True)
        chosen, rejected = self.items[..., list(first)], self.items[..., list(second)]
        count = len(first)
        prompt = self.prompt[..., None].expand_as(chosen)
        weight = (self.weight[..., None] / count).expand(chosen.shape)
        flat = lambda t: t.reshape(t.shape[0], -1)  # noqa: E731
        return Pairs(flat(prompt), flat(chosen), flat(rejected), flat(weight).contiguous(), self.problem)


def _candidate_sets(prob: Problem, k: int, law: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every k-subset ``[S, k]`` and its probability per prompt ``[P, S]`` under the candidate law:
    ``"uniform"`` (every subset alike) or ``"ref"`` (k draws from π_ref without replacement)."""
    subsets = torch.tensor(list(itertools.combinations(range(prob.Y), k)), dtype=torch.int64)
    if law == "uniform":
        return subsets, torch.full((prob.P, len(subsets)), 1.0 / len(subsets), dtype=torch.float64)
    orders = torch.tensor(list(itertools.permutations(range(k))), dtype=torch.int64)
    ref = prob.ref_logp[:, subsets[:, orders]]                                    # [P, S, k!, k]
    # sequential sampling without replacement: Π_k π(y_k)/(1 − Σ_{j<k} π(y_j)), summed over orders
    used = torch.cat([torch.zeros_like(ref[..., :1]), ref.exp().cumsum(-1)[..., :-1]], -1)
    return subsets, (ref - torch.log1p(-used.clamp(max=1.0))).sum(-1).logsumexp(-1).exp()


def list_population(prob: Problem, k: int, candidates: str = "uniform", reward_scores: bool = False) -> Lists:
    """Every (prompt, ranking of a k-subset) with weight ρ(x)·q(S|x)·PL(τ|S; r(x, ·)) under the
    problem's Bradley–Terry reward (PL's pairwise marginals are BT). ``scores``: None (the ranking
    is the label) or, with ``reward_scores=True``, the items' true rewards (soft labels)."""
    _check_k(prob, k, candidates)
    subsets, set_probs = _candidate_sets(prob, k, candidates)
    orders = torch.tensor(list(itertools.permutations(range(k))), dtype=torch.int64)
    items = subsets[:, orders].reshape(-1, k)                                     # [S·k!, k]
    reward = prob.reward[:, items]                                                 # [P, S·k!, k]
    weight = (prob.prompt_weights[:, None] * set_probs.repeat_interleave(len(orders), 1)
              * pl_log_prob(reward).exp())
    prompt = torch.arange(prob.P)[:, None].expand_as(weight)
    return Lists(prompt.reshape(1, -1), items.expand(prob.P, -1, -1).reshape(1, -1, k), weight.reshape(1, -1),
                 prob, reward.reshape(1, -1, k) if reward_scores else None)


def sample_lists(prob: Problem, n: int, k: int, candidates: str = "uniform", seed=0) -> Lists:
    """``n`` lists per run, weight 1/n: x ~ ρ, a k-subset from the candidate law, a PL ranking
    (hard labels: ``scores`` None).
    ``seed`` an int s (one run) or B ints; run b equals the one-run call with seed s_b."""
    _check_k(prob, k, candidates)
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive integer number of lists, got {n!r}")
    subsets, set_probs = _candidate_sets(prob, k, candidates)
    rows = []
    for run_seed in _seeds(seed, None):
        gen = torch.Generator().manual_seed(run_seed)
        x = torch.multinomial(prob.prompt_weights, n, replacement=True, generator=gen)
        chosen_sets = subsets[torch.multinomial(set_probs[x], 1, generator=gen)[:, 0]]
        order = pl_sample(prob.reward[x[:, None], chosen_sets], gen)
        rows.append((x, chosen_sets.gather(1, order)))
    prompt = torch.stack([x for x, _ in rows])
    items = torch.stack([it for _, it in rows])
    weight = torch.full(prompt.shape, 1.0 / n, dtype=torch.float64)
    return Lists(prompt, items, weight, prob)


def _check_k(prob: Problem, k: int, candidates: str) -> None:
    if not prob.is_bradley_terry:
        raise ValueError("Plackett–Luce lists need a Bradley–Terry reward (Problem(..., reward=...))")
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= prob.Y:
        raise ValueError(f"k must be an integer list size in 2..{prob.Y}, got {k!r}")
    if candidates not in CANDIDATE_LAWS:
        raise ValueError(f"candidates={candidates!r} is not allowed; use one of {CANDIDATE_LAWS}")
    count = prob.P
    for i in range(k):
        count *= prob.Y - i
    if count > MAX_RANKINGS:
        raise ValueError(f"{count} rankings to enumerate (P·Y!/(Y−k)!); at most {MAX_RANKINGS}: lower k or Y")


# ------------------------------------------------------------------------------ general preferences
def rock_paper_scissors(win: float = 1.0, ref_probs=(1 / 3, 1 / 3, 1 / 3)) -> Problem:
    """The 3-cycle 0 ≻ 1 ≻ 2 ≻ 0, each with probability ``win`` ∈ [½, 1], one prompt."""
    if not 0.5 <= win <= 1.0:
        raise ValueError(f"win must be in [0.5, 1], got {win!r}")
    lose = 1 - win
    pref = torch.tensor([[[0.5, win, lose], [lose, 0.5, win], [win, lose, 0.5]]], dtype=torch.float64)
    ref = torch.as_tensor(ref_probs, dtype=torch.float64).reshape(1, 3)
    return Problem(FlatSpace(3), ref.log(), preference=pref)


def annotator_mixture(space: FlatSpace, ref_logp, rewards, weights, **problem_fields) -> Problem:
    """Preferences of a population of Bradley–Terry annotators: M = Σ_a w_a·σ(r_a(y) − r_a(y′)),
    ``rewards`` ``[A, P, Y]``, ``weights`` ``[A]`` (normalised). A mixture of BT models is in general
    not BT and can be intransitive (a Condorcet cycle with three annotators)."""
    rewards = torch.as_tensor(rewards, dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if rewards.ndim != 3 or weights.shape != (rewards.shape[0],):
        raise ValueError(f"rewards must be [A, P, Y] and weights [A]; got {tuple(rewards.shape)}, {tuple(weights.shape)}")
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("annotator weights must be non-negative with a positive sum")
    weights = weights / weights.sum()
    pref = torch.einsum("a,apxy->pxy", weights, torch.sigmoid(rewards[..., :, None] - rewards[..., None, :]))
    return Problem(space, ref_logp, preference=pref, **problem_fields)


# ------------------------------------------------------------------------------ policy-dependent pair laws
def policy_pairs(prob: Problem, policy_logp, opponent_logp=None, noise=0.0) -> Pairs:
    """The exact records when the pair shown to the annotator is drawn from μ = π ⊗ π′ (y from the
    policy, y′ from the opponent; π′ = π by default, on-policy sampling as in online DPO,
    arXiv 2402.04792), diagonal removed and renormalised per prompt (docs/conventions.md): record (a, b),
    a ≠ b, has weight ρ·w_ab·p̃(a ≻ b). ``policy_logp`` ``[P, Y]`` or ``[B, P, Y]`` gives weights
    ``[1 or B, N]`` over the same P·Y·(Y−1) records."""
    policy = _policy_table(prob, policy_logp, "policy_logp")
    opponent = policy if opponent_logp is None else _policy_table(prob, opponent_logp, "opponent_logp")
    check_probability_rate(noise, "noise")
    rate = hyper_values(noise, "noise").reshape(-1, 1, 1, 1)
    mu = policy.exp()[..., :, None] * opponent.exp()[..., None, :]
    mu = mu * (1 - torch.eye(prob.Y, dtype=torch.float64))
    mu = mu / mu.sum((-1, -2), keepdim=True)
    pref = prob.preference_matrix()
    weight = prob.prompt_weights[:, None, None] * (mu + mu.transpose(-1, -2)) * ((1 - rate) * pref + rate * (1 - pref))
    x, a, b = (~torch.eye(prob.Y, dtype=torch.bool)).expand(prob.P, -1, -1).nonzero(as_tuple=True)
    return Pairs(x[None], a[None], b[None], weight.reshape(-1, prob.P, prob.Y, prob.Y)[:, x, a, b], prob, noise)


def sample_policy_pairs(prob: Problem, policy_logp, n: int, noise=0.0, seed=0, opponent_logp=None) -> Pairs:
    """``n`` records per run with both responses drawn from the policy (μ = π_b ⊗ π′_b, π′ = π by
    default), hard labels from the problem's preference flipped at rate ``noise``: the sampled
    counterpart of ``policy_pairs``. ``policy_logp`` ``[P, Y]`` or ``[B, P, Y]``; ``seed`` an int s
    (run b uses s + b) or B ints; run b equals ``sample_pairs`` on the problem with pair law π_b ⊗ π′_b."""
    policy = _policy_table(prob, policy_logp, "policy_logp")
    opponent = policy if opponent_logp is None else _policy_table(prob, opponent_logp, "opponent_logp")
    runs = max(policy.shape[0], opponent.shape[0])
    seeds = _seeds(seed, runs)
    rows = [sample_pairs(prob.replace(pair_dist=model_pair_law(policy[min(b, len(policy) - 1)],
                                                               opponent[min(b, len(opponent) - 1)])),
                         n, noise, seeds[b]) for b in range(runs)]
    stack = lambda name: torch.cat([getattr(row, name) for row in rows])  # noqa: E731
    return Pairs(stack("prompt"), stack("chosen"), stack("rejected"), stack("weight"), prob, noise)


def _policy_table(prob: Problem, logp, name: str) -> torch.Tensor:
    table = torch.as_tensor(logp, dtype=torch.float64)
    if table.ndim not in (2, 3) or table.shape[-2:] != (prob.P, prob.Y):
        raise ValueError(f"{name} must be [P, Y] or [B, P, Y] with P={prob.P}, Y={prob.Y}, got {tuple(table.shape)}")
    if torch.isnan(table).any() or (torch.logsumexp(table, -1).abs() > 1e-6).any():
        raise ValueError(f"{name} rows must be normalised log-probabilities")
    return table.reshape(-1, prob.P, prob.Y)


# ------------------------------------------------------------------------------ labels from verifiers, models, smoothing
def verifier_preference(space: FlatSpace, ref_logp, correct, true_positive: float = 1.0,
                        false_positive: float = 0.0, **problem_fields) -> Problem:
    """Preferences from a noisy pass/fail verifier (e.g. self-generated tests, as in DSTC, arXiv
    2411.13611): response y is correct with probability c(y) ``[P, Y]``; the verifier passes it
    with probability s(y) = tpr·c(y) + fpr·(1 − c(y)); a pair is ordered by the verdicts, ties
    broken by a fair coin, so P(a ≻ b) = s_a(1 − s_b) + ½[s_a s_b + (1 − s_a)(1 − s_b)] = ½ + ½(s_a − s_b)
    (transitive, but not Bradley–Terry)."""
    correct = torch.as_tensor(correct, dtype=torch.float64)
    if not (0 <= false_positive <= 1 and 0 <= true_positive <= 1):
        raise ValueError("true_positive and false_positive must be probabilities in [0, 1]")
    if (correct < 0).any() or (correct > 1).any():
        raise ValueError("correct must hold probabilities in [0, 1]")
    passes = true_positive * correct + false_positive * (1 - correct)
    pref = 0.5 + 0.5 * (passes[..., :, None] - passes[..., None, :])
    return Problem(space, ref_logp, preference=pref, **problem_fields)


def model_pair_law(first_logp, second_logp=None) -> torch.Tensor:
    """The pair law μ = π₁ ⊗ π₂ ``[P, Y, Y]`` when the two responses come from two models (e.g. a
    stronger model and the policy itself, the multi-model setting of "More is Less", arXiv
    2504.02193); π₂ = π₁ by default (single-model data). Use it as ``Problem(..., pair_dist=μ)``;
    a mixture of models is ``model_pair_law(log Σ_k w_k π_k)``."""
    first = torch.as_tensor(first_logp, dtype=torch.float64)
    second = first if second_logp is None else torch.as_tensor(second_logp, dtype=torch.float64)
    if first.ndim != 2 or first.shape != second.shape:
        raise ValueError(f"model log-probs must be two [P, Y] tables, got {tuple(first.shape)}, {tuple(second.shape)}")
    return first.exp()[:, :, None] * second.exp()[:, None, :]


def smoothed_preference(prob: Problem, smoothing: float = 0.0, reward_model=None) -> Problem:
    """Soft (smoothed) preference labels in place of binary ones (SmPO, Lu et al., arXiv 2506.02698):
    p̂(a ≻ b) = (1 − ε)·σ(r̂(a) − r̂(b)) + ε/2, with r̂ a reward model ``[P, Y]`` (default the
    problem's reward) and ε = ``smoothing`` ∈ [0, 1). A population of soft labels is the same
    objective as the population of hard labels drawn from p̂, so DPO's optimum is π_ref·e^{r̂/β}/Z
    at ε = 0 (the reward model's tilt) and, for ε > 0, the projection of DPO under label noise ε/2
    (p̂ = (1 − ε/2)p + (ε/2)(1 − p)), which is not π*_β [derived]."""
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    reward = prob.reward if reward_model is None else torch.as_tensor(reward_model, dtype=torch.float64)
    if reward is None or reward.shape != (prob.P, prob.Y):
        raise ValueError(f"need a reward model [P, Y] = [{prob.P}, {prob.Y}] (the problem has no BT reward)")
    soft = (1 - smoothing) * torch.sigmoid(reward[:, :, None] - reward[:, None, :]) + smoothing / 2
    return prob.replace(reward=None, preference=soft)
