"""The smallest policies whose parameters are shared across responses: ``LogLinear`` and ``MLP``.

With a free logit per response (``Tabular``) a DPO step on one pair moves only that pair's
logits; with shared parameters it moves every response whose features overlap, which is where
likelihood displacement comes from (Razin et al., arXiv 2410.08847). Both follow the policy
protocol of ``toybench.autoregressive`` (leading run axis B, one tensor program for all runs,
run b seeded ``seed + b``).
"""
from __future__ import annotations

import torch

from .autoregressive import TokenPolicy, run_generators, stacked_normal
from .policies import log_normalize


def _as_tensor(value, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float64).detach().clone()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be array-like numbers, got {type(value).__name__}") from err


class LogLinear(TokenPolicy):
    """log π(y|x) = log_softmax_y(base(x, y) + ⟨φ(x, y), w_b⟩): fixed features, shared weights.

    ``features`` φ: ``[Y, D]`` (every prompt) or ``[P, Y, D]``, finite; ``base``: ``[Y]`` or
    ``[P, Y]`` fixed logits (default log π_ref, so zero weights start at π_ref); the trainable
    weights w are ``[B, D]``: ``init`` ``[D]`` or ``[B, D]``, else N(0, ``init_scale``²) per run
    from seed + b (``init_scale`` 0: zeros). In the language of Razin et al. (arXiv 2410.08847),
    φ(y) is the (fixed) unembedding of response y and w the trainable hidden embedding.
    On a ``SequenceSpace`` the features are per whole string; ``token_logp`` is the exact
    factorisation of the table along the prefix tree."""

    def __init__(self, prob, features, runs: int = 1, init=None, base=None, init_scale: float = 0.0, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device=None):
        self._setup(prob, runs, dtype, device)
        P, Y = prob.P, prob.Y
        phi = _as_tensor(features, "features")
        if phi.ndim == 2:
            phi = phi.expand(P, -1, -1)
        if phi.ndim != 3 or phi.shape[:2] != (P, Y) or not torch.isfinite(phi).all():
            raise ValueError(f"features must be finite [Y, D] = [{Y}, D] or [P, Y, D] = [{P}, {Y}, D], "
                             f"got {tuple(phi.shape)}")
        base = prob.ref_logp if base is None else _as_tensor(base, "base")
        if base.ndim == 1:
            base = base.expand(P, -1)
        if base.shape != (P, Y) or not torch.isfinite(base).all():
            raise ValueError(f"base must be finite logits [Y] or [P, Y] = [{P}, {Y}], got {tuple(base.shape)}")
        if not init_scale >= 0:
            raise ValueError(f"init_scale must be >= 0, got {init_scale!r}")
        D = phi.shape[-1]
        if init is None:
            weights = stacked_normal(run_generators(seed, self.runs), (D,), init_scale, self.dtype, self.device)
        else:
            weights = _as_tensor(init, "init")
            if weights.shape not in ((D,), (self.runs, D)) or not torch.isfinite(weights).all():
                raise ValueError(f"init must be finite weights [D] = [{D}] or [B, D] = [{self.runs}, {D}], "
                                 f"got {tuple(weights.shape)}")
        self.features = phi.to(device=self.device, dtype=self.dtype)
        self.base = base.to(device=self.device, dtype=self.dtype)
        self.weights = weights.to(device=self.device, dtype=self.dtype).expand(self.runs, D).clone().requires_grad_(True)
        self._config = dict(features=features, base=base, init_scale=init_scale)

    def logp(self) -> torch.Tensor:
        """``[B, P, Y]``."""
        logits = self.base + torch.einsum("pyd,bd->bpy", self.features, self.weights)
        return log_normalize(logits)

    def token_logp(self) -> torch.Tensor:
        """log π(a|s) ``[B, P, N, A]`` along the prefix tree."""
        return self.tree.token_logp(self.logp())

    def parameters(self) -> list[torch.Tensor]:
        return [self.weights]

    def like(self, runs: int | None = None, dtype=None, seed: int = 0) -> LogLinear:
        """A fresh policy of the same class and configuration (weights drawn from ``seed``)."""
        return LogLinear(self.problem, runs=runs or self.runs, seed=seed, dtype=dtype or self.dtype,
                         device=self.device, **self._config)

    def __repr__(self) -> str:
        return f"LogLinear(P={self.problem.P}, Y={self.problem.Y}, D={self.features.shape[-1]}, runs={self.runs})"


class MLP(TokenPolicy):
    """An autoregressive MLP with trainable token embeddings (a neural n-gram model over the whole
    prefix, Bengio et al. 2003):

        x(s) = [e_prompt(x); e(t_1); …; e(t_L)]   (prefix tokens, EOS-embedding as padding),
        log π(·|s) = masked log_softmax(log π_ref(·|s) + W₂·tanh(W₁·x(s) + b₁) + b₂).

    Shapes per run: prompt embeddings ``[P, embed]``, token embeddings ``[vocab + 1, embed]``,
    W₁ ``[(max_len + 1)·embed, hidden]``, W₂ ``[hidden, A]``. Embeddings and W₁ are N(0, 1) and
    N(0, 1/fan_in) from seed + b; W₂, b₁, b₂ start at 0, so the policy starts at π_ref exactly.
    On a ``FlatSpace(K)`` it is one step over K tokens (an MLP of the prompt embedding)."""

    def __init__(self, prob, runs: int = 1, embed: int = 8, hidden: int = 32, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device=None):
        self._setup(prob, runs, dtype, device)
        for name, value in (("embed", embed), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        tree, B = self.tree, self.runs
        gens = run_generators(seed, B)
        fan_in = (tree.max_len + 1) * embed

        def normal(shape, std):
            return stacked_normal(gens, shape, std, self.dtype, self.device).requires_grad_(True)

        def zeros(shape):
            return torch.zeros(B, *shape, dtype=self.dtype, device=self.device, requires_grad=True)

        self.prompt_embedding = normal((prob.P, embed), 1.0)
        self.token_embedding = normal((tree.vocab + 1, embed), 1.0)
        self.w1 = normal((fan_in, hidden), fan_in ** -0.5)
        self.b1 = zeros((hidden,))
        self.w2 = zeros((hidden, tree.actions))
        self.b2 = zeros((tree.actions,))
        self._prefix_tokens = tree.prefix_tokens.to(self.device)
        self._config = dict(embed=embed, hidden=hidden)

    def token_logp(self) -> torch.Tensor:
        """log π(a|s) ``[B, P, N, A]``."""
        B, (P, N) = self.runs, (self.problem.P, self.tree.prefixes)
        tokens = self.token_embedding[:, self._prefix_tokens]                 # [B, N, L, e]
        tokens = tokens.reshape(B, 1, N, -1).expand(B, P, N, -1)
        prompts = self.prompt_embedding[:, :, None, :].expand(B, P, N, -1)
        x = torch.cat([prompts, tokens], -1).reshape(B, P * N, -1)
        hidden = torch.tanh(torch.baddbmm(self.b1[:, None, :], x, self.w1))
        out = torch.baddbmm(self.b2[:, None, :], hidden, self.w2).reshape(B, P, N, -1)
        return self.masked_log_softmax(self.ref_token_logp + out)

    def parameters(self) -> list[torch.Tensor]:
        return [self.prompt_embedding, self.token_embedding, self.w1, self.b1, self.w2, self.b2]

    def like(self, runs: int | None = None, dtype=None, seed: int = 0) -> MLP:
        return MLP(self.problem, runs=runs or self.runs, seed=seed, dtype=dtype or self.dtype, device=self.device,
                   **self._config)

    def __repr__(self) -> str:
        return f"MLP({self.problem.space!r}, P={self.problem.P}, runs={self.runs}, {self._config})"
