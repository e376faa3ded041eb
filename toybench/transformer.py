"""``TinyTransformer``: B independent causal transformers, exact over the enumerated space.

One run is a pre-norm decoder (Vaswani et al., arXiv 1706.03762; GPT-2 layout) of ``layers``
blocks, width ``width``, ``heads`` heads, MLP width 4·width, parameter-free LayerNorm, learned
token, position and prompt embeddings (the prompt is the first input, like a BOS token), and
an output head added to the reference's next-token log-probs:

    log π(·|s) = masked log_softmax(log π_ref(·|s) + W_out·LN(h_L(s))).

W_out starts at 0, so the policy starts at π_ref exactly. **Exactness.** Every context the tree
needs (each prefix of depth < max_len) is the causal state at position k of some string of
length max_len − 1; the forward teacher-forces all vocab^(max_len−1) such strings once and reads
each prefix's state from (row = rank·vocab^(max_len−1−k), position k). So ``token_logp`` gives
every allowed (prefix, token) log-prob and ``logp`` every string's, with no sampling. Prefixes
at depth max_len only allow EOS (log-prob 0).

**Runs.** Weights are stacked ``[B, …]``; every product is a batched matmul over the run axis
(``torch.bmm``/``einsum``) and attention is written out, so B transformers are one tensor
program. Run b's initial weights come from seed + b (N(0, 1) embeddings, N(0, 1/fan_in) matrices).
``row_chunk`` bounds the attention temporaries by evaluating the strings in chunks of rows.
"""
from __future__ import annotations

import math

import torch

from .autoregressive import TokenPolicy, run_generators, stacked_normal


def _layer_norm(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.layer_norm(x, x.shape[-1:])


class TinyTransformer(TokenPolicy):
    """B causal transformers over a problem's token tree; see the module docstring."""

    def __init__(self, prob, runs: int = 1, width: int = 16, layers: int = 1, heads: int = 1, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device=None, row_chunk: int | None = None):
        self._setup(prob, runs, dtype, device)
        for name, value in (("width", width), ("layers", layers), ("heads", heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if layers > 4:
            raise ValueError(f"layers must be 1..4 for a tiny transformer, got {layers}")
        if width % heads:
            raise ValueError(f"width={width} must be divisible by heads={heads}")
        if row_chunk is not None and (isinstance(row_chunk, bool) or not isinstance(row_chunk, int) or row_chunk < 1):
            raise ValueError(f"row_chunk must be a positive integer or None, got {row_chunk!r}")
        self.width, self.layers, self.heads, self.row_chunk = width, layers, heads, row_chunk
        tree, B, d = self.tree, self.runs, width
        gens = run_generators(seed, B)

        def normal(shape, std):
            return stacked_normal(gens, shape, std, self.dtype, self.device).requires_grad_(True)

        self.seq_len = max(tree.max_len, 1)                       # prompt slot + max_len − 1 tokens
        self.token_embedding = normal((tree.vocab, d), 1.0)
        self.prompt_embedding = normal((prob.P, d), 1.0)
        self.position_embedding = normal((self.seq_len, d), 1.0)
        self.blocks = [{"qkv": normal((d, 3 * d), d ** -0.5), "out": normal((d, d), d ** -0.5),
                        "up": normal((d, 4 * d), d ** -0.5), "down": normal((4 * d, d), (4 * d) ** -0.5)}
                       for _ in range(layers)]
        self.head = torch.zeros(B, d, tree.actions, dtype=self.dtype, device=self.device, requires_grad=True)
        self._index_contexts()
        self._config = dict(width=width, layers=layers, heads=heads, row_chunk=row_chunk)

    def _index_contexts(self):
        """Input strings ``[R, seq_len − 1]`` and, per prefix of depth < max_len, its (row, position)."""
        tree = self.tree
        inner = torch.nonzero(tree.depth < tree.max_len).flatten()          # contexts that choose a token
        rows = tree.vocab ** (self.seq_len - 1)
        row_ids = torch.arange(rows)
        power = (self.seq_len - 2 - torch.arange(self.seq_len - 1)).clamp_min(0)
        self._strings = (torch.div(row_ids[:, None], tree.vocab ** power, rounding_mode="floor") % tree.vocab
                         ).to(self.device)                                   # [R, seq_len − 1]
        depth = tree.depth[inner]
        self._inner = inner.to(self.device)
        self._context_row = (tree.rank[inner] * tree.vocab ** (self.seq_len - 1 - depth)).to(self.device)
        self._context_pos = depth.to(self.device)
        self._causal = torch.ones(self.seq_len, self.seq_len, dtype=torch.bool, device=self.device).tril()

    def hidden_states(self, rows: slice = slice(None)) -> torch.Tensor:
        """Final (normalised) states ``[B, P, R, seq_len, width]`` of the strings ``rows``."""
        B, P, d, H = self.runs, self.problem.P, self.width, self.heads
        strings = self._strings[rows]
        R = strings.shape[0]
        tokens = self.token_embedding[:, strings]                            # [B, R, L − 1, d]
        prompts = self.prompt_embedding[:, :, None, None, :].expand(B, P, R, 1, d)
        x = torch.cat([prompts, tokens[:, None].expand(B, P, R, -1, d)], 3) + self.position_embedding[:, None, None]
        L = x.shape[3]
        x = x.reshape(B, P * R * L, d)
        for block in self.blocks:
            q, k, v = torch.bmm(_layer_norm(x), block["qkv"]).reshape(B, P * R, L, 3, H, d // H).unbind(3)
            scores = torch.einsum("bmqhe,bmkhe->bmhqk", q, k) / math.sqrt(d // H)
            scores = scores.masked_fill(~self._causal[:L, :L], -math.inf)
            mixed = torch.einsum("bmhqk,bmkhe->bmqhe", torch.softmax(scores, -1), v).reshape(B, -1, d)
            x = x + torch.bmm(mixed, block["out"])
            x = x + torch.bmm(torch.nn.functional.gelu(torch.bmm(_layer_norm(x), block["up"])), block["down"])
        return _layer_norm(x).reshape(B, P, R, L, d)

    def _inner_states(self) -> torch.Tensor:
        """Final states of every prefix that chooses a token, ``[B, P, N_inner, width]``."""
        R = self._strings.shape[0]
        chunk = R if self.row_chunk is None else self.row_chunk
        states = torch.cat([self.hidden_states(slice(start, start + chunk)) for start in range(0, R, chunk)], 2)
        return states[:, :, self._context_row, self._context_pos]

    def context_states(self) -> torch.Tensor:
        """h(s): the final (normalised) state of every prefix ``[B, P, N, width]``; 0 at depth max_len,
        where EOS is forced and no state is computed."""
        inner = self._inner_states()
        B, P, d = self.runs, self.problem.P, self.width
        out = torch.zeros(B, P, self.tree.prefixes, d, dtype=inner.dtype, device=inner.device)
        return out.index_copy(2, self._inner, inner)

    def token_logp(self) -> torch.Tensor:
        """log π(a|s) ``[B, P, N, A]`` from one teacher-forced pass over the strings."""
        B, P, tree = self.runs, self.problem.P, self.tree
        contexts = self._inner_states()                                        # [B, P, N_inner, d]
        out = torch.einsum("bpnd,bda->bpna", contexts, self.head)
        logits = torch.zeros(B, P, tree.prefixes, tree.actions, dtype=self.dtype, device=self.device)
        logits = logits.index_copy(2, self._inner, out)
        return self.masked_log_softmax(self.ref_token_logp + logits)

    def parameters(self) -> list[torch.Tensor]:
        blocks = [block[name] for block in self.blocks for name in ("qkv", "out", "up", "down")]
        return [self.token_embedding, self.prompt_embedding, self.position_embedding, *blocks, self.head]

    def like(self, runs: int | None = None, dtype=None, seed: int = 0) -> TinyTransformer:
        return TinyTransformer(self.problem, runs=runs or self.runs, seed=seed, dtype=dtype or self.dtype,
                               device=self.device, **self._config)

    def __repr__(self) -> str:
        return f"TinyTransformer({self.problem.space!r}, P={self.problem.P}, runs={self.runs}, {self._config})"
