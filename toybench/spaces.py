"""Finite response spaces.

Everything downstream of a space sees a response as an index ``0..Y-1``. A space only has to
say how many responses it holds (``size``), their token lengths (``lengths``, used by
length-aware losses) and a printable label for each. ``SequenceSpace`` (every EOS-terminated
token string up to a length) adds the token views: per-response token ids, the prefix tree, and
exact conversions between a table over whole strings and per-token conditional log-probs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

MAX_RESPONSES = 4096
"""Largest response space toybench enumerates: pair tables are ``[P, Y, Y]`` float64, so
4096 responses already cost 128 MiB per prompt."""


def check_enumerable(size: int, what: str) -> None:
    """Raise a ValueError when ``size`` responses are too many to enumerate exactly."""
    if size > MAX_RESPONSES:
        raise ValueError(
            f"{what} has {size} responses; toybench enumerates at most {MAX_RESPONSES} "
            "(pair tables are [P, Y, Y] float64)"
        )


@dataclass(frozen=True, eq=False)
class FlatSpace:
    """K atomic responses ``0..K-1``.

    ``lengths`` (optional, K positive numbers) gives each response a token length so that
    length-normalised losses (SimPO, ORPO, ``ipo(length_normalized=True)``) work on a flat
    space; without it those losses raise a ValueError saying lengths are missing.
    """

    K: int
    lengths: torch.Tensor | None = None

    def __post_init__(self):
        if isinstance(self.K, bool) or not isinstance(self.K, int) or self.K < 2:
            raise ValueError(f"FlatSpace(K) needs an integer K >= 2 responses, got {self.K!r}")
        check_enumerable(self.K, f"FlatSpace({self.K})")
        if self.lengths is not None:
            lengths = torch.as_tensor(self.lengths, dtype=torch.float64).detach().clone()
            if lengths.shape != (self.K,):
                raise ValueError(f"lengths must have shape ({self.K},), got {tuple(lengths.shape)}")
            if not torch.isfinite(lengths).all() or (lengths <= 0).any():
                raise ValueError("lengths must be finite and positive (token counts)")
            object.__setattr__(self, "lengths", lengths)

    @property
    def size(self) -> int:
        """Number of responses Y."""
        return self.K

    def label(self, y: int) -> str:
        """Printable name of response ``y``."""
        return f"y{y}"

    def __repr__(self) -> str:
        extra = "" if self.lengths is None else f", lengths={self.lengths.tolist()}"
        return f"FlatSpace({self.K}{extra})"


MAX_SEQUENCES = 65536
"""Largest ``SequenceSpace`` toybench enumerates (strings, not pairs): policies evaluate every
string exactly; a ``population`` over it still builds ``[P, Y, Y]`` tables, so pair-level work
is limited by memory long before this."""


@dataclass(frozen=True, eq=False)
class SequenceSpace:
    """Every string of ``min_len``..``max_len`` ordinary tokens followed by EOS, enumerated once.

    Ordinary tokens are ``0..vocab-1``; EOS is token ``vocab`` (so a step chooses among
    ``A = vocab + 1`` actions). vocab 3, max_len 3 gives 3 + 9 + 27 = 39 responses. ``min_len``
    (default 1) allows fixed-length trees (``min_len = max_len``: EOS is then forced).

    **Prefix tree.** The ``N = Σ_{k=0}^{max_len} vocab^k`` prefixes (strings of ordinary tokens,
    the empty one at index 0) are numbered by depth, then lexicographically, so the children of
    prefix s at depth k are the contiguous block ``offset[k+1] + (s − offset[k])·vocab + a``.
    At prefix s the allowed actions (``allowed [N, A]``) are the ordinary tokens while
    depth < max_len and EOS while depth ≥ min_len. Response y is the prefix ``response_prefix[y]``
    followed by EOS; responses follow the prefix order.

    **Token views** (``T = max_len + 1`` steps, the last step of every string is EOS):
    ``tokens [Y, T]`` (EOS-padded), ``step_prefix [Y, T]`` (the context of each step, 0 on
    padding), ``step_mask [Y, T]`` (True on the ``steps = length + 1`` real steps) and
    ``lengths [Y]`` (ordinary tokens, float64, what length-aware losses read; EOS not counted);
    ``prefix_tokens [N, max_len]`` (each prefix's tokens, EOS-padded), ``rank [N]`` (its
    lexicographic index within its depth).
    A string's log-prob is the sum of its steps' conditional log-probs; a forced EOS has log-prob 0.
    """

    vocab: int
    max_len: int
    min_len: int = 1
    _tree: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("vocab", "max_len", "min_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SequenceSpace({name}) must be an integer >= 1, got {value!r}")
        if self.min_len > self.max_len:
            raise ValueError(f"min_len={self.min_len} must be <= max_len={self.max_len}")
        size = sum(self.vocab ** k for k in range(self.min_len, self.max_len + 1))
        if size > MAX_SEQUENCES:
            raise ValueError(f"SequenceSpace(vocab={self.vocab}, max_len={self.max_len}) has {size} responses; "
                             f"toybench enumerates at most {MAX_SEQUENCES}")
        if size < 2:
            raise ValueError(f"SequenceSpace(vocab={self.vocab}, max_len={self.max_len}, min_len={self.min_len}) "
                             "has a single response; a preference problem needs at least 2")
        object.__setattr__(self, "_tree", _build_tree(self.vocab, self.max_len, self.min_len))

    # ------------------------------------------------------------------ sizes and per-response views
    @property
    def size(self) -> int:
        """Number of responses Y."""
        return int(self._tree["response_prefix"].shape[0])

    @property
    def eos(self) -> int:
        """The EOS token id (= vocab)."""
        return self.vocab

    @property
    def actions(self) -> int:
        """A = vocab + 1 choices per step (ordinary tokens, then EOS)."""
        return self.vocab + 1

    @property
    def prefixes(self) -> int:
        """N, the number of prefixes (the empty one included)."""
        return int(self._tree["depth"].shape[0])

    def __getattr__(self, name):
        tree = self.__dict__.get("_tree")
        if tree is not None and name in tree:
            return tree[name]
        raise AttributeError(name)

    def label(self, y: int) -> str:
        """Printable name of response ``y``: its tokens as letters (a, b, …), e.g. ``'ab'``."""
        n = int(self.lengths[y])
        return "".join(_letter(int(t)) for t in self.tokens[y, :n])

    def index(self, tokens) -> int:
        """The response index of a token string (ordinary tokens, no EOS)."""
        ids = [int(t) for t in tokens]
        if not self.min_len <= len(ids) <= self.max_len:
            raise ValueError(f"a response has {self.min_len}..{self.max_len} tokens, got {len(ids)}")
        if any(not 0 <= t < self.vocab for t in ids):
            raise ValueError(f"token ids must lie in 0..{self.vocab - 1} (EOS {self.eos} is implicit), got {ids}")
        prefix = self.offsets[len(ids)] + sum(t * self.vocab ** (len(ids) - 1 - i) for i, t in enumerate(ids))
        return int(self.prefix_response[prefix])

    # ------------------------------------------------------------------ table <-> token conversions
    def check_token_table(self, token_table: torch.Tensor, name: str = "token table") -> None:
        """ValueError unless ``token_table`` is ``[..., N, A]``."""
        if token_table.ndim < 2 or tuple(token_table.shape[-2:]) != (self.prefixes, self.actions):
            raise ValueError(f"{name} must have shape [..., {self.prefixes}, {self.actions}] (prefixes, "
                             f"vocab + EOS) for {self!r}, got {tuple(token_table.shape)}")

    def sequence_sum(self, token_table: torch.Tensor) -> torch.Tensor:
        """Σ over each string's steps of ``token_table[..., prefix, token]``: ``[..., N, A]`` →
        ``[..., Y]`` (log-probs of strings from conditional log-probs; summed token rewards)."""
        self.check_token_table(token_table)
        flat = token_table.reshape(*token_table.shape[:-2], -1)
        index = (self.step_prefix * self.actions + self.tokens).to(flat.device)
        steps = flat[..., index.reshape(-1)].reshape(*flat.shape[:-1], *index.shape)
        steps = torch.where(self.step_mask.to(flat.device), steps, torch.zeros((), dtype=steps.dtype,
                                                                                 device=steps.device))
        return steps.sum(-1)

    def subtree_logmass(self, logp: torch.Tensor) -> torch.Tensor:
        """log Σ_{y below s} π(y) for every prefix s: ``[..., Y]`` → ``[..., N]`` (root = logsumexp)."""
        if logp.shape[-1] != self.size:
            raise ValueError(f"a table over {self!r} must have {self.size} responses on its last axis, "
                             f"got {tuple(logp.shape)}")
        lead = logp.shape[:-1]
        terminal = logp.new_full((*lead, self.prefixes), -math.inf)
        terminal[..., self.response_prefix.to(logp.device)] = logp
        levels = [None] * (self.max_len + 1)
        levels[self.max_len] = terminal[..., self.offsets[self.max_len]:]
        for depth in range(self.max_len - 1, -1, -1):
            own = terminal[..., self.offsets[depth]:self.offsets[depth + 1]]
            below = torch.logsumexp(levels[depth + 1].reshape(*lead, -1, self.vocab), -1)
            # prefixes shorter than min_len are no response (own = −inf): their mass is the
            # subtree's alone; logaddexp(−inf, ·) would give NaN second derivatives (tb.solve's Newton)
            levels[depth] = below if depth < self.min_len else torch.logaddexp(own, below)
        return torch.cat(levels, -1)

    def token_logp(self, logp: torch.Tensor) -> torch.Tensor:
        """The conditional log-probs log π(a | s) ``[..., N, A]`` of a table over whole strings
        ``[..., Y]``: log mass(s·a) − log mass(s) (EOS: log π(s) − log mass(s)); −inf where an action
        is not allowed or a prefix has no mass. Any distribution over the strings factorises this
        way, so ``sequence_sum(token_logp(t)) == t`` exactly (up to rounding)."""
        mass = self.subtree_logmass(logp)
        lead = logp.shape[:-1]
        child = self.child.to(logp.device)
        child_mass = torch.where(child >= 0, mass[..., child.clamp_min(0)],
                                 torch.full((), -math.inf, dtype=logp.dtype, device=logp.device))
        own = logp.new_full((*lead, self.prefixes), -math.inf)
        own[..., self.response_prefix.to(logp.device)] = logp
        table = torch.cat([child_mass, own[..., None]], -1) - mass[..., None]
        return torch.where(torch.isnan(table), -math.inf, table)   # −inf − (−inf) below an empty prefix

    def __repr__(self) -> str:
        extra = "" if self.min_len == 1 else f", min_len={self.min_len}"
        return f"SequenceSpace(vocab={self.vocab}, max_len={self.max_len}{extra})"


def _letter(token: int) -> str:
    return chr(ord("a") + token) if token < 26 else f"<{token}>"


def _build_tree(vocab: int, max_len: int, min_len: int) -> dict:
    """Index tensors of the prefix tree and the token views (see ``SequenceSpace``)."""
    counts = [vocab ** k for k in range(max_len + 1)]
    offsets = [0]
    for count in counts:
        offsets.append(offsets[-1] + count)
    N = offsets[-1]
    depth = torch.cat([torch.full((c,), k, dtype=torch.int64) for k, c in enumerate(counts)])
    rank = torch.arange(N) - torch.tensor(offsets[:-1])[depth]         # lexicographic index within a depth
    child = torch.full((N, vocab), -1, dtype=torch.int64)
    inner = depth < max_len
    child[inner] = (torch.tensor(offsets)[depth[inner] + 1] + rank[inner] * vocab)[:, None] + torch.arange(vocab)
    allowed = torch.zeros(N, vocab + 1, dtype=torch.bool)
    allowed[:, :vocab] = inner[:, None]
    allowed[:, vocab] = depth >= min_len
    response_prefix = torch.nonzero(depth >= min_len).flatten()
    prefix_response = torch.full((N,), -1, dtype=torch.int64)
    prefix_response[response_prefix] = torch.arange(len(response_prefix))
    # token ids of every prefix: digit i of its rank in base vocab
    T = max_len + 1
    Y = len(response_prefix)
    resp_depth, resp_rank = depth[response_prefix], rank[response_prefix]
    pos = torch.arange(T)
    power = (resp_depth[:, None] - 1 - pos).clamp_min(0)
    digits = torch.div(resp_rank[:, None], vocab ** power, rounding_mode="floor") % vocab
    tokens = torch.where(pos < resp_depth[:, None], digits, torch.full((Y, T), vocab, dtype=torch.int64))
    step_mask = pos <= resp_depth[:, None]
    # the context of step i is the prefix made of the first i tokens: rank = resp_rank // vocab^(depth − i)
    ctx_rank = torch.div(resp_rank[:, None], vocab ** (resp_depth[:, None] - pos).clamp_min(0), rounding_mode="floor")
    step_prefix = torch.where(step_mask, torch.tensor(offsets)[pos.clamp_max(max_len)] + ctx_rank,
                              torch.zeros((), dtype=torch.int64))
    # tokens of every prefix [N, max_len], padded with EOS
    prefix_pos = torch.arange(max_len)
    prefix_power = (depth[:, None] - 1 - prefix_pos).clamp_min(0)
    prefix_digits = torch.div(rank[:, None], vocab ** prefix_power, rounding_mode="floor") % vocab
    prefix_tokens = torch.where(prefix_pos < depth[:, None], prefix_digits, torch.full((N, max_len), vocab))
    return {"offsets": offsets, "depth": depth, "child": child, "allowed": allowed,
            "response_prefix": response_prefix, "prefix_response": prefix_response, "tokens": tokens,
            "step_prefix": step_prefix, "step_mask": step_mask, "prefix_tokens": prefix_tokens, "rank": rank, "steps": resp_depth + 1,
            "lengths": resp_depth.to(torch.float64)}
