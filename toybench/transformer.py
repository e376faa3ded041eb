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
        """Per prefix that chooses a token (depth < max_len: the first ``N_inner`` prefixes, since
        prefixes are numbered by depth): its depth, last token and ancestors ``[N_inner, seq_len]``
        (the prefix of depth j ≤ depth at column j; the prefix itself, masked, beyond its depth)."""
        tree = self.tree
        count = int((tree.depth < tree.max_len).sum())
        depth, rank = tree.depth[:count], tree.rank[:count]
        column = torch.arange(self.seq_len)
        visible = column <= depth[:, None]
        above = torch.div(rank[:, None], tree.vocab ** (depth[:, None] - column).clamp_min(0), rounding_mode="floor")
        ancestors = torch.where(visible, torch.tensor(tree.offsets)[column] + above, torch.arange(count)[:, None])
        self._depth = depth.to(self.device)
        self._last_token = tree.prefix_tokens[1:count].gather(1, (depth[1:, None] - 1)).flatten().to(self.device)
        self._ancestors = ancestors.to(self.device)
        self._hidden_mask = (~visible)[:, :, None].to(self.device)          # [N_inner, seq_len, 1]

    def _inputs(self) -> torch.Tensor:
        """Input vectors of the inner prefixes ``[B, P, N_inner, width]``: the prompt's embedding at
        the root, the last token's below it, plus the position (depth) embedding."""
        B, P, d = self.runs, self.problem.P, self.width
        tokens = self.token_embedding[:, self._last_token]                   # [B, N_inner − 1, d]
        x = torch.cat([self.prompt_embedding[:, :, None], tokens[:, None].expand(B, P, -1, d)], 2)
        return x + self.position_embedding[:, self._depth][:, None]

    def _attend(self, q, k, v, nodes: slice) -> torch.Tensor:
        """Causal attention of the prefixes ``nodes`` over their ancestors: ``[B, P, n, width]``."""
        B, P, _, H, e = q.shape
        ancestors = self._ancestors[nodes]
        n, L = ancestors.shape
        keys = k.index_select(2, ancestors.flatten()).view(B, P, n, L, H, e)
        values = v.index_select(2, ancestors.flatten()).view(B, P, n, L, H, e)
        scores = (q[:, :, nodes, None] * keys).sum(-1).mul_(e ** -0.5).masked_fill_(self._hidden_mask[nodes], -math.inf)
        weights = torch.softmax(scores, 3)                                   # [B, P, n, L, H]
        return (weights[..., None] * values).sum(3).reshape(B, P, n, H * e)

    def _inner_states(self) -> torch.Tensor:
        """Final (normalised) states of every prefix that chooses a token, ``[B, P, N_inner, width]``:
        each prefix's state computed once (a prefix is its own causal sequence of ancestors)."""
        B, P, d, H = self.runs, self.problem.P, self.width, self.heads
        x = self._inputs()
        count = x.shape[2]
        chunk = count if self.row_chunk is None else self.row_chunk
        chunks = [slice(start, min(start + chunk, count)) for start in range(0, count, chunk)]
        for block in self.blocks:
            qkv = torch.bmm(_layer_norm(x).view(B, -1, d), block["qkv"]).view(B, P, count, 3, H, d // H)
            q, k, v = qkv.unbind(3)
            parts = []
            for nodes in chunks:
                part = x[:, :, nodes] + torch.bmm(self._attend(q, k, v, nodes).view(B, -1, d), block["out"]).view(
                    B, P, -1, d)
                hidden = torch.nn.functional.gelu(torch.bmm(_layer_norm(part).view(B, -1, d), block["up"]))
                parts.append(part + torch.bmm(hidden, block["down"]).view(B, P, -1, d))
            x = parts[0] if len(parts) == 1 else torch.cat(parts, 2)
        return _layer_norm(x)

    def context_states(self) -> torch.Tensor:
        """h(s): the final (normalised) state of every prefix ``[B, P, N, width]``; 0 at depth max_len,
        where EOS is forced and no state is computed."""
        inner = self._inner_states()
        B, P, d = self.runs, self.problem.P, self.width
        rest = inner.new_zeros(B, P, self.tree.prefixes - inner.shape[2], d)
        return torch.cat([inner, rest], 2)

    def token_logp(self) -> torch.Tensor:
        """log π(a|s) ``[B, P, N, A]`` from one pass over the prefixes."""
        B, P, tree = self.runs, self.problem.P, self.tree
        contexts = self._inner_states()                                        # [B, P, N_inner, d]
        out = torch.bmm(contexts.view(B, -1, self.width), self.head).view(B, P, -1, tree.actions)
        logits = torch.cat([out, out.new_zeros(B, P, tree.prefixes - out.shape[2], tree.actions)], 2)
        return self.masked_log_softmax(self.ref_token_logp + logits)

    def parameters(self) -> list[torch.Tensor]:
        blocks = [block[name] for block in self.blocks for name in ("qkv", "out", "up", "down")]
        return [self.token_embedding, self.prompt_embedding, self.position_embedding, *blocks, self.head]

    def like(self, runs: int | None = None, dtype=None, seed: int = 0) -> TinyTransformer:
        return TinyTransformer(self.problem, runs=runs or self.runs, seed=seed, dtype=dtype or self.dtype,
                               device=self.device, **self._config)

    def __repr__(self) -> str:
        return f"TinyTransformer({self.problem.space!r}, P={self.problem.P}, runs={self.runs}, {self._config})"
