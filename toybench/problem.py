"""A preference problem over a finite response space.

``Problem`` holds, for P prompts and Y responses (all float64, no run axis):

- ``ref_logp``        ``[P, Y]``  log π_ref(y|x), full support, rows normalised (or give the
  probabilities as ``ref_probs=`` / ``Problem.from_probs``: they are stored as their log);
- ``reward``          ``[P, Y]``  Bradley–Terry reward r(x, y), or None; over a ``SequenceSpace`` it may
  be given per (prefix, token), ``[P, N, A]``: then ``token_reward`` keeps that table and ``reward``
  is its sum along each string (zero required on actions the tree does not allow);
- ``preference``      ``[P, Y, Y]`` P(y ≻ y'|x) with M + Mᵀ = 1 (given, or σ(r_y − r_y') under BT);
- ``prompt_weights``  ``[P]``     ρ(x), summing to one (uniform by default);
- ``pair_dist``       the law μ(y, y'|x) of the pair shown to the annotator: ``"ref"`` (π_ref ⊗ π_ref),
  ``"uniform"``, ``"did"`` (the DID record law, arXiv 2505.23761) or a ``[P, Y, Y]`` table.

``pair_weights()`` gives w_ab = μ̃(a,b) + μ̃(b,a) for distinct a ≠ b, where μ̃ is μ with its
diagonal removed and renormalised per prompt (docs/conventions.md, pair law).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .spaces import FlatSpace, SequenceSpace

PAIR_DISTS = ("ref", "uniform", "did")
NORMALISATION_TOL = 1e-6
"""|logsumexp(ref_logp row)| allowed: loose enough for log-probs rounded from float32."""
PREFERENCE_TOL = 1e-9
"""|M + Mᵀ − 1| allowed, float64 rounding of sigmoid-built matrices."""


@dataclass(frozen=True, eq=False)
class Problem:
    """A preference problem; see the module docstring for the fields and their shapes."""

    space: FlatSpace | SequenceSpace
    ref_logp: torch.Tensor | None = None
    reward: torch.Tensor | None = None
    preference: torch.Tensor | None = None
    prompt_weights: torch.Tensor | None = None
    pair_dist: str | torch.Tensor = "ref"
    token_reward: torch.Tensor | None = None
    ref_probs: dataclasses.InitVar[torch.Tensor | None] = None

    def __post_init__(self, ref_probs=None):
        set_field = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        Y = self.space.size
        if (self.ref_logp is None) == (ref_probs is None):
            raise ValueError("give exactly one of ref_logp= (log π_ref, [P, Y]) or ref_probs= (π_ref, [P, Y])")
        ref = _float64(self.ref_logp, "ref_logp") if ref_probs is None else _log_of_probs(ref_probs)
        if ref.ndim != 2 or ref.shape[1] != Y:
            raise ValueError(f"ref_logp must have shape [P, {Y}] (prompts, responses), got {tuple(ref.shape)}")
        if not torch.isfinite(ref).all():
            raise ValueError("ref_logp must be finite: π_ref needs full support (no -inf, NaN)")
        row_error = torch.logsumexp(ref, dim=-1).abs().max().item()
        if row_error > NORMALISATION_TOL:
            hint = ""
            if (ref >= 0).all() and (ref.sum(-1) - 1).abs().max().item() <= NORMALISATION_TOL:
                hint = "; these look like probabilities: pass ref_probs= or take .log()"
            raise ValueError(f"ref_logp rows must normalise (logsumexp = 0); the worst row is off by "
                             f"{row_error:.3g}{hint}")
        set_field("ref_logp", ref)
        P = ref.shape[0]

        _token_level_reward(self, set_field)
        if (self.reward is None) == (self.preference is None):
            raise ValueError("give exactly one of reward= (Bradley–Terry, [P, Y]) or preference= ([P, Y, Y])")
        if self.reward is not None:
            reward = _float64(self.reward, "reward")
            if reward.shape != (P, Y):
                raise ValueError(f"reward must have shape [{P}, {Y}] like ref_logp, got {tuple(reward.shape)}")
            if not torch.isfinite(reward).all():
                raise ValueError("reward must be finite (found NaN or inf)")
            set_field("reward", reward)
        else:
            pref = _float64(self.preference, "preference")
            if pref.shape != (P, Y, Y):
                raise ValueError(f"preference must have shape [{P}, {Y}, {Y}], got {tuple(pref.shape)}")
            if not torch.isfinite(pref).all() or (pref < 0).any() or (pref > 1).any():
                raise ValueError("preference entries must be probabilities in [0, 1]")
            asym = (pref + pref.transpose(-1, -2) - 1).abs().max().item()
            if asym > PREFERENCE_TOL:
                raise ValueError(f"preference must satisfy M + Mᵀ = 1 (so M[y, y] = 1/2); off by {asym:.3g}")
            set_field("preference", pref)

        if self.prompt_weights is None:
            rho = torch.full((P,), 1.0 / P, dtype=torch.float64)
        else:
            rho = _float64(self.prompt_weights, "prompt_weights")
            if rho.shape != (P,) or not torch.isfinite(rho).all() or (rho < 0).any() or rho.sum() <= 0:
                raise ValueError(f"prompt_weights must be {P} non-negative finite numbers with a positive sum")
            rho = rho / rho.sum()
        set_field("prompt_weights", rho)

        if isinstance(self.pair_dist, str):
            if self.pair_dist not in PAIR_DISTS:
                raise ValueError(f"pair_dist={self.pair_dist!r} is not allowed; use one of {PAIR_DISTS} or a [P, Y, Y] table")
            if self.pair_dist == "did" and self.reward is None:
                raise ValueError("pair_dist='did' needs a Bradley–Terry reward (π_l ∝ π_ref·e^{-r})")
        else:
            table = _float64(self.pair_dist, "pair_dist")
            if table.shape != (P, Y, Y):
                raise ValueError(f"a pair_dist table must have shape [{P}, {Y}, {Y}], got {tuple(table.shape)}")
            if not torch.isfinite(table).all() or (table < 0).any():
                raise ValueError("a pair_dist table must hold finite non-negative weights")
            off_diag = table.sum((-1, -2)) - table.diagonal(dim1=-2, dim2=-1).sum(-1)
            if (off_diag <= 0).any():
                raise ValueError("every prompt's pair_dist needs positive weight on some pair of distinct responses")
            set_field("pair_dist", table)

    # ----------------------------------------------------------------------------------------
    @property
    def P(self) -> int:
        return self.ref_logp.shape[0]

    @property
    def Y(self) -> int:
        return self.space.size

    @property
    def is_bradley_terry(self) -> bool:
        return self.reward is not None

    def preference_matrix(self) -> torch.Tensor:
        """P(y ≻ y'|x), ``[P, Y, Y]``; σ(r_y − r_y') under Bradley–Terry."""
        if self.preference is not None:
            return self.preference
        return torch.sigmoid(self.reward[:, :, None] - self.reward[:, None, :])

    def pair_law(self) -> torch.Tensor:
        """μ̃(a, b|x) ``[P, Y, Y]``: the pair law with its diagonal removed, summing to 1 per prompt.

        For ``pair_dist="did"`` this is the DID record law (rejected drawn from π_l ∝ π_ref·e^{-r})."""
        if isinstance(self.pair_dist, torch.Tensor):
            mu = self.pair_dist.clone()
        elif self.pair_dist == "ref":
            ref = self.ref_logp.exp()
            mu = ref[:, :, None] * ref[:, None, :]
        elif self.pair_dist == "uniform":
            mu = torch.ones(self.P, self.Y, self.Y, dtype=torch.float64)
        else:  # did: chosen ~ π_ref, rejected ~ π_l
            mu = self.ref_logp.exp()[:, :, None] * did_rejected_logp(self).exp()[:, None, :]
        mu.diagonal(dim1=-2, dim2=-1).zero_()
        return mu / mu.sum((-1, -2), keepdim=True)

    def pair_weights(self) -> torch.Tensor:
        """w_ab = μ̃(a,b) + μ̃(b,a) ``[P, Y, Y]``, symmetric, zero diagonal, Σ_{a<b} w_ab = 1."""
        mu = self.pair_law()
        return mu + mu.transpose(-1, -2)

    @classmethod
    def from_probs(cls, space: FlatSpace, ref_probs, **fields) -> Problem:
        """A Problem from π_ref's probabilities ``[P, Y]`` (rows summing to one, full support)
        instead of its log-probabilities; ``fields`` as for ``Problem``."""
        return cls(space, ref_probs=ref_probs, **fields)

    def replace(self, **changes) -> Problem:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def random(cls, space: FlatSpace | SequenceSpace, prompts: int = 1, seed: int = 0, *, reward_scale: float = 1.0,
               ref_scale: float = 1.0, preference: str = "bt", prompt_weights=None,
               pair_dist="ref") -> Problem:
        """A reproducible random instance.

        ref logits ~ N(0, ref_scale²) (then log-softmax); BT rewards r ~ N(0, reward_scale²);
        ``preference="general"`` draws an intransitive matrix M = σ(A), A antisymmetric with
        N(0, reward_scale²) entries. Same seed, same numbers.
        """
        if isinstance(prompts, bool) or not isinstance(prompts, int) or prompts < 1:
            raise ValueError(f"prompts must be a positive integer, got {prompts!r}")
        if preference not in ("bt", "general"):
            raise ValueError(f"preference={preference!r} is not allowed; use 'bt' or 'general'")
        for name, value in (("reward_scale", reward_scale), ("ref_scale", ref_scale)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        gen = torch.Generator().manual_seed(int(seed))
        shape = (prompts, space.size)
        ref_logp = torch.log_softmax(ref_scale * torch.randn(shape, generator=gen, dtype=torch.float64), -1)
        if preference == "bt":
            reward = reward_scale * torch.randn(shape, generator=gen, dtype=torch.float64)
            return cls(space, ref_logp, reward=reward, prompt_weights=prompt_weights, pair_dist=pair_dist)
        upper = torch.randn(prompts, space.size, space.size, generator=gen, dtype=torch.float64).triu(1)
        antisym = reward_scale * (upper - upper.transpose(-1, -2))
        return cls(space, ref_logp, preference=torch.sigmoid(antisym), prompt_weights=prompt_weights,
                   pair_dist=pair_dist)

    def __repr__(self) -> str:
        kind = "BT reward" if self.is_bradley_terry else "general preference"
        dist = self.pair_dist if isinstance(self.pair_dist, str) else "table"
        return f"Problem({self.space!r}, P={self.P}, {kind}, pair_dist={dist!r})"


def _token_level_reward(prob: Problem, set_field) -> None:
    """A ``[P, N, A]`` reward over a SequenceSpace's (prefix, token) steps: keep it as ``token_reward``
    and set ``reward`` to its sum along every string."""
    space = prob.space
    given = prob.token_reward
    if given is None and prob.reward is not None and hasattr(space, "prefixes"):
        candidate = _float64(prob.reward, "reward")
        if candidate.ndim == 3:
            given = candidate
    if given is None:
        return
    if not hasattr(space, "prefixes"):
        raise ValueError("a token-level reward needs a SequenceSpace; a FlatSpace takes reward [P, Y]")
    token_reward = _float64(given, "token_reward")
    P, N, A = prob.ref_logp.shape[0], space.prefixes, space.actions
    if token_reward.shape != (P, N, A):
        raise ValueError(f"a token-level reward must have shape [{P}, {N}, {A}] (prompts, prefixes, vocab + EOS), "
                         f"got {tuple(token_reward.shape)}")
    if not torch.isfinite(token_reward).all():
        raise ValueError("token_reward must be finite (found NaN or inf)")
    if (token_reward[:, ~space.allowed] != 0).any():
        raise ValueError("token_reward must be 0 on (prefix, token) steps the tree does not allow "
                         "(EOS at depth < min_len, ordinary tokens at max_len)")
    summed = space.sequence_sum(token_reward)
    if prob.reward is not None and prob.token_reward is not None:
        if not torch.allclose(_float64(prob.reward, "reward"), summed, rtol=0, atol=1e-12):
            raise ValueError("reward and token_reward disagree: reward must be token_reward summed along each string")
    set_field("token_reward", token_reward)
    set_field("reward", summed)


def did_rejected_logp(prob: Problem) -> torch.Tensor:
    """log π_l ``[P, Y]`` with π_l ∝ π_ref·e^{-r}: DID's optimal rejected sampler (arXiv 2505.23761)."""
    return torch.log_softmax(prob.ref_logp - prob.reward, dim=-1)


E1_REF = (0.4, 0.3, 0.2, 0.1)
"""π_ref of E1, the worked example (docs/conventions.md)."""
E1_REWARD = (0.0, 0.5, 1.5, 3.0)
"""Bradley–Terry reward of E1."""


def e1(pair_dist="uniform", lengths=None) -> Problem:
    """E1, the worked example used by the claims, the tests and the docs: one prompt, four
    responses, BT reward r = (0, 0.5, 1.5, 3), π_ref = (0.4, 0.3, 0.2, 0.1).

    ``pair_dist``: ``"uniform"`` (W_u, the default), ``"ref"`` (W_s = π_ref ⊗ π_ref), ``"chain"``
    (W_c: only the adjacent pairs (0, 1), (1, 2), (2, 3)) or anything ``Problem`` accepts;
    ``lengths``: per-response token lengths, for length-aware losses."""
    if isinstance(pair_dist, str) and pair_dist == "chain":
        pair_dist = torch.zeros(1, 4, 4, dtype=torch.float64)
        pair_dist[0, [0, 1, 2], [1, 2, 3]] = 1.0
    return Problem(FlatSpace(4, lengths=None if lengths is None else list(lengths)),
                   torch.tensor([E1_REF], dtype=torch.float64).log(),
                   reward=torch.tensor([E1_REWARD], dtype=torch.float64), pair_dist=pair_dist)


def _log_of_probs(ref_probs) -> torch.Tensor:
    """log π_ref from probabilities: non-negative, full support, rows summing to one."""
    probs = _float64(ref_probs, "ref_probs")
    if not torch.isfinite(probs).all() or (probs <= 0).any():
        raise ValueError("ref_probs must be finite and positive: π_ref needs full support (no zeros)")
    row_error = (probs.sum(-1) - 1).abs().max().item()
    if row_error > NORMALISATION_TOL:
        raise ValueError(f"ref_probs rows must sum to one; the worst row is off by {row_error:.3g}")
    return probs.log()


def _float64(value, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float64).detach().clone()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be array-like numbers, got {type(value).__name__}") from err
