"""``TinyTransformer``: B independent causal transformers, exact over the enumerated space.

One run is a pre-norm decoder (Vaswani et al., arXiv 1706.03762; GPT-2 layout) of ``layers``
blocks, width ``width``, ``heads`` heads, MLP width 4·width (exact, erf GELU), parameter-free
LayerNorm, learned token, position and prompt embeddings (the prompt is the first input, like a
BOS token), and an output head added to the reference's next-token log-probs:

    log π(·|s) = masked log_softmax(log π_ref(·|s) + W_out·LN(h_L(s))).

W_out starts at 0, so the policy starts at π_ref exactly. **Exactness.** A causal decoder's state
at a prefix s depends on s alone, so each prefix that chooses a token (depth < max_len) is
computed once, as the last position of its own sequence: its ancestors in the prefix tree
(the prompt, then s's first 1, 2, … tokens). A layer's attention at s reads the keys and values
of s's ancestors, which the same layer has computed for those prefixes. This is the same
computation as teacher-forcing every string of max_len − 1 tokens, without repeating the
prefixes that strings share (vocab 3, max_len 5: 121 states instead of 405). ``token_logp``
gives every allowed (prefix, token) log-prob and ``logp`` every string's, with no sampling.
Prefixes at depth max_len only allow EOS (log-prob 0).

**Runs.** Weights are stacked ``[B, …]``; every product is a batched matmul over the run axis
(``torch.bmm``) and attention is written out, so B transformers are one tensor program. Run b's
initial weights come from seed + b (N(0, 1) embeddings, N(0, 1/fan_in) matrices). ``row_chunk``
bounds the attention temporaries by attending in chunks of that many prefixes.

**Gradients.** ``vjp`` is the closed-form backward pass (the policy protocol's optional
``vjp``): the transpose of every product, LayerNorm and GELU derivatives (torch's own
kernels), softmax Jacobians, and the string log-probs' pull-back to the tokens as subtree sums
of the tree. ``logp()`` under ``torch.no_grad()`` keeps the activations for it (without
``row_chunk``); ``logp()`` with gradients enabled builds an ordinary autograd graph, which the
tests compare with ``vjp``.
"""
from __future__ import annotations

import math

import torch

from .autoregressive import TokenPolicy, run_generators, stacked_normal

LN_EPS = 1e-5
"""LayerNorm's ε (torch's default)."""


def _layer_norm(x: torch.Tensor):
    """(LN(x) over the last axis, mean, 1/std): ``torch.native_layer_norm``, whose backward kernel ``vjp`` calls."""
    return torch.native_layer_norm(x, x.shape[-1:], None, None, LN_EPS)


def _layer_norm_vjp(grad, x, mean, rstd):
    return torch.ops.aten.native_layer_norm_backward(grad, x, x.shape[-1:], mean, rstd, None, None,
                                                     [True, False, False])[0]


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
        self._tape = None                  # (parameter versions, activations) of the last no-grad pass

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
        hidden = torch.zeros(visible.shape, dtype=self.dtype).masked_fill_(~visible, -math.inf)
        self._hidden_bias = hidden[:, :, None, None, None].to(self.device)  # [N_inner, seq_len, 1, 1, 1]: −∞ beyond the depth
        self._responses = tree.response_prefix.to(self.device)

    def _inputs(self) -> torch.Tensor:
        """Input vectors of the inner prefixes ``[B, P·N_inner, width]``: the prompt's embedding at
        the root, the last token's below it, plus the position (depth) embedding."""
        B, P, d = self.runs, self.problem.P, self.width
        tokens = self.token_embedding.index_select(1, self._last_token)     # [B, N_inner − 1, d]
        x = torch.cat([self.prompt_embedding[:, :, None], tokens[:, None].expand(B, P, -1, d)], 2)
        return (x + self.position_embedding.index_select(1, self._depth)[:, None]).view(B, -1, d)

    def _chunks(self) -> list[slice]:
        count = self._ancestors.shape[0]
        size = count if self.row_chunk is None else self.row_chunk
        return [slice(start, min(start + size, count)) for start in range(0, count, size)]

    def _gathered(self, kp, vp, nodes: slice):
        """Keys and values ``[n, L, B, P, H, e]`` of the ancestors of the prefixes ``nodes``, from
        prefix-major keys and values ``[N_inner, B, P, H, e]``."""
        ancestors = self._ancestors[nodes]
        shape = (*ancestors.shape, *kp.shape[1:])
        return kp.index_select(0, ancestors.flatten()).view(shape), vp.index_select(0, ancestors.flatten()).view(shape)

    def _attend(self, q, k, v, keep: bool):
        """Causal attention of every inner prefix over its ancestors, from queries, keys and values
        ``[B, P, N_inner, H, e]``: the mixed values ``[B, M, width]`` and, if ``keep``, for ``vjp`` the
        prefix-major queries and, per chunk of prefixes, the attention weights ``[n, L, B, P, H]``,
        keys and values ``[n, L, B, P, H, e]``. Attention runs prefix-major (``[N_inner, B, P, H, e]``):
        every product and sum is over rows of B·P·H·e contiguous numbers, and the backward pass adds
        onto the ancestors along the first axis (measured ~35 % faster than run-major at B = 64)."""
        B, P, count, H, e = q.shape
        qp, kp, vp = (t.permute(2, 0, 1, 3, 4).contiguous() for t in (q, k, v))
        parts, saved = [], []
        for nodes in self._chunks():
            keys, values = self._gathered(kp, vp, nodes)
            scores = (qp[nodes, None] * keys).sum(-1) * e ** -0.5 + self._hidden_bias[nodes]
            weight = torch.softmax(scores, 1)
            parts.append((weight[..., None] * values).sum(1))
            if keep:
                saved.append((weight, keys, values))
        mixed = parts[0] if len(parts) == 1 else torch.cat(parts, 0)
        return mixed.permute(1, 2, 0, 3, 4).reshape(B, -1, H * e), (qp, saved)

    def _attend_vjp(self, q, saved, grad_mixed):
        """∂/∂(q, k, v) ``[B, M, 3·width]`` of Σ grad_mixed·mixed: with s the scaled scores and
        w = softmax(s), ∂s = w ⊙ (∂w − Σ_L w ⊙ ∂w), ∂q = Σ_L ∂s·k/√e, ∂k = ∂s·q/√e, ∂v = w·∂mixed
        (keys and values summed back onto each ancestor with ``index_add_`` along the prefix axis)."""
        B, P, count, H, e = q.shape
        qp, chunks = saved
        grad_all = grad_mixed.view(B, P, count, H, e).permute(2, 0, 1, 3, 4).contiguous()
        grad_q, grad_k, grad_v = torch.empty_like(qp), torch.zeros_like(qp), torch.zeros_like(qp)
        for nodes, (w, keys, values) in zip(self._chunks(), chunks, strict=True):
            g, ancestors = grad_all[nodes, None], self._ancestors[nodes].flatten()
            grad_w = (values * g).sum(-1)
            grad_s = (grad_w - (w * grad_w).sum(1, keepdim=True)).mul_(w).mul_(e ** -0.5)[..., None]
            torch.sum(grad_s * keys, 1, out=grad_q[nodes])
            grad_k.index_add_(0, ancestors, (grad_s * qp[nodes, None]).flatten(0, 1))
            grad_v.index_add_(0, ancestors, (w[..., None] * g).flatten(0, 1))
        grads = [t.permute(1, 2, 0, 3, 4).flatten(3) for t in (grad_q, grad_k, grad_v)]
        return torch.cat(grads, -1).view(B, -1, 3 * H * e)

    def _inner_states(self, tape: list | None = None) -> torch.Tensor:
        """Final (normalised) states of every prefix that chooses a token, ``[B, P, N_inner, width]``;
        with ``tape`` (a list, under no_grad), append what ``vjp`` needs per layer."""
        B, P, d, H = self.runs, self.problem.P, self.width, self.heads
        x = self._inputs()
        shape = (B, P, -1, H, d // H)
        for block in self.blocks:
            a, mean, rstd = _layer_norm(x)
            q, k, v = (torch.bmm(a, weight).view(shape) for weight in block["qkv"].split(d, -1))
            mixed, saved = self._attend(q, k, v, keep=tape is not None)
            x1 = torch.baddbmm(x, mixed, block["out"])
            c, mean1, rstd1 = _layer_norm(x1)
            u = torch.bmm(c, block["up"])
            hidden = torch.nn.functional.gelu(u)
            if tape is not None:
                tape.append((x, mean, rstd, a, q, saved, mixed, x1, mean1, rstd1, c, u, hidden))
            x = torch.baddbmm(x1, hidden, block["down"])
        out, mean, rstd = _layer_norm(x)
        if tape is not None:
            tape.append((x, mean, rstd, out))
        return out.view(B, P, -1, d)

    def context_states(self) -> torch.Tensor:
        """h(s): the final (normalised) state of every prefix ``[B, P, N, width]``; 0 at depth max_len,
        where EOS is forced and no state is computed."""
        inner = self._inner_states()
        B, P, d = self.runs, self.problem.P, self.width
        rest = inner.new_zeros(B, P, self.tree.prefixes - inner.shape[2], d)
        return torch.cat([inner, rest], 2)

    def _head(self, states: torch.Tensor) -> torch.Tensor:
        """log π(a|s) ``[B, P, N, A]`` from the inner prefixes' final states ``[B, P, N_inner, d]``."""
        B, P, tree = self.runs, self.problem.P, self.tree
        out = torch.bmm(states.reshape(B, -1, self.width), self.head).view(B, P, -1, tree.actions)
        logits = torch.cat([out, out.new_zeros(B, P, tree.prefixes - out.shape[2], tree.actions)], 2)
        return self.masked_log_softmax(self.ref_token_logp + logits)

    def token_logp(self) -> torch.Tensor:
        """log π(a|s) ``[B, P, N, A]`` from one pass over the prefixes (under no_grad without
        ``row_chunk``, the pass's activations are kept for ``vjp``)."""
        tape = None
        if not torch.is_grad_enabled() and self.row_chunk is None:
            tape = []
            self._tape = (self._versions(), tape)
        return self._head(self._inner_states(tape))

    def _versions(self) -> tuple:
        return tuple((id(p), p._version) for p in self.parameters())

    def vjp(self, grad_logp: torch.Tensor) -> list[torch.Tensor]:
        """Σ grad_logp·logp() differentiated by every parameter (``parameters()`` order), without
        autograd: the closed-form backward pass of the module docstring, from the activations of
        the last no-grad ``logp()`` when the parameters have not changed since, else from a new pass."""
        with torch.no_grad():
            versions, tape = self._tape or (None, None)
            if versions != self._versions():
                tape = []
                self._inner_states(tape)
            self._tape = None
            B, P, tree, d = self.runs, self.problem.P, self.tree, self.width
            x, mean, rstd, states = tape.pop()
            count = states.shape[1] // P
            token = self._head(states.view(B, P, count, d))[:, :, :count]         # [B, P, N_inner, A]
            # ∂/∂ token log-probs: a token's is the sum of grad_logp over the strings below its child
            # (children of the inner prefixes are prefixes 1..N−1 in order), EOS's the string's own
            own = grad_logp.new_zeros(B, P, tree.prefixes)
            own.index_copy_(2, self._responses, grad_logp)
            below = [own[:, :, tree.offsets[tree.max_len]:]]
            for depth in range(tree.max_len - 1, 0, -1):
                level = own[:, :, tree.offsets[depth]:tree.offsets[depth + 1]]
                below.insert(0, level + below[0].view(B, P, -1, tree.vocab).sum(-1))
            grad_token = torch.cat([torch.cat(below, 2).view(B, P, count, tree.vocab), own[:, :, :count, None]], 3)
            grad_logits = grad_token - token.exp() * grad_token.sum(-1, keepdim=True)
            grad_logits = grad_logits.view(B, -1, tree.actions)
            grads = {"head": torch.bmm(states.transpose(1, 2), grad_logits)}
            grad_x = _layer_norm_vjp(torch.bmm(grad_logits, self.head.transpose(1, 2)), x, mean, rstd)
            for index in range(len(self.blocks) - 1, -1, -1):
                block = self.blocks[index]
                x, mean, rstd, a, q, saved, mixed, x1, mean1, rstd1, c, u, hidden = tape.pop()
                grads[index, "down"] = torch.bmm(hidden.transpose(1, 2), grad_x)
                grad_u = torch.ops.aten.gelu_backward(torch.bmm(grad_x, block["down"].transpose(1, 2)), u)
                grads[index, "up"] = torch.bmm(c.transpose(1, 2), grad_u)
                grad_x = grad_x + _layer_norm_vjp(torch.bmm(grad_u, block["up"].transpose(1, 2)), x1, mean1, rstd1)
                grads[index, "out"] = torch.bmm(mixed.transpose(1, 2), grad_x)
                grad_qkv = self._attend_vjp(q, saved, torch.bmm(grad_x, block["out"].transpose(1, 2)))
                grads[index, "qkv"] = torch.bmm(a.transpose(1, 2), grad_qkv)
                grad_x = grad_x + _layer_norm_vjp(torch.bmm(grad_qkv, block["qkv"].transpose(1, 2)), x, mean, rstd)
            grad_x = grad_x.view(B, P, count, d)
            below_root = grad_x[:, :, 1:].sum(1)
            token_grad = torch.zeros_like(self.token_embedding).index_add_(1, self._last_token, below_root)
            position_grad = torch.zeros_like(self.position_embedding).index_add_(1, self._depth, grad_x.sum(1))
            blocks = [grads[index, name] for index in range(len(self.blocks)) for name in ("qkv", "out", "up", "down")]
            return [token_grad, grad_x[:, :, 0].clone(), position_grad, *blocks, grads["head"]]

    def parameters(self) -> list[torch.Tensor]:
        blocks = [block[name] for block in self.blocks for name in ("qkv", "out", "up", "down")]
        return [self.token_embedding, self.prompt_embedding, self.position_embedding, *blocks, self.head]

    def like(self, runs: int | None = None, dtype=None, seed: int = 0) -> TinyTransformer:
        return TinyTransformer(self.problem, runs=runs or self.runs, seed=seed, dtype=dtype or self.dtype,
                               device=self.device, **self._config)

    def __repr__(self) -> str:
        return f"TinyTransformer({self.problem.space!r}, P={self.problem.P}, runs={self.runs}, {self._config})"
