"""Shared numerics: overflow-safe elementwise forms, the run axis, flat record indices, bisection.

One home for pieces several modules need. Everything here is elementwise or batched over
leading axes and follows the dtype and device of its inputs.
"""
from __future__ import annotations

import contextlib
import functools
import math

import torch
import torch.nn.functional as F

from ._checks import hyper_values

BISECTION_STEPS = 200
"""Halvings of a bracket: 2^−200 of any bracket used here is far below float64 resolution."""


# ------------------------------------------------------------------------------ log-space forms
def softplus(t: torch.Tensor) -> torch.Tensor:
    """sp(t) = log(1 + e^t), float64-exact: ``F.softplus`` with its linear cut-off moved from 20 to
    40 (past 40, e^{−t} is below float64 resolution relative to t; past 20 the default returns t,
    dropping up to 2e-9, and gives autograd the slope 1 instead of σ(t))."""
    return F.softplus(t, threshold=40.0)


def log_sigmoid(t: torch.Tensor) -> torch.Tensor:
    """log σ(t) = −sp(−t), float64-exact (``softplus``). Not ``F.logsigmoid``: in torch 2.13 on
    CPU it takes ~10 ms per call on small tensors when its intra-op threads are contended."""
    return -softplus(-t)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − e^x) for x ≤ 0, stable on both sides of −log 2 (Mächler, "Accurately computing
    log(1 − exp(−|a|))", 2012). Each branch sees only its own inputs, so autograd through the
    unused branch cannot give 0·inf = NaN (e.g. at x = −1e-300)."""
    near = x > -math.log(2.0)
    near_x = torch.where(near, x, -1.0)
    far_x = torch.where(near, -1.0, x)
    return torch.where(near, torch.log(-torch.expm1(near_x)), torch.log1p(-torch.exp(far_x)))


Z_CAP = 1e3
"""Past z = 1e3, sp(−z) and σ(−z) are 0 in float64 and float32 (e^{−1000} underflows)."""


def exp_difference(x: torch.Tensor, y: torch.Tensor, log_scale=0.0, cap=math.inf) -> torch.Tensor:
    """e^{log_scale}·(e^x − e^y) without forming e^x or e^y, so never inf − inf.

    Apart (x ≠ y): sign(x − y)·exp(log_scale + max(x, y) + log(1 − e^{−|x − y|})), exact to a few
    ulps of the exponent; ±inf only where the difference itself exceeds the float range. Positive
    values are capped at ``cap`` (a number or a broadcasting tensor) before the exponential: for
    a margin z that only enters as sp(−z) or σ(−z), a cap where these are 0 (``Z_CAP``) changes
    no value, and autograd never meets 0·inf (σ(−z) = 0 times an overflowed dz/dx). Tied
    (x = y): exactly 0, with autograd's derivative (e^{log_scale + x}, −e^{log_scale + y})
    (at most e^{−1} of the float maximum). Each branch is evaluated only on its own elements."""
    log_scale = torch.as_tensor(log_scale, dtype=x.dtype, device=x.device)
    tied = x == y
    x_apart, y_apart = torch.where(tied, 0.0, x), torch.where(tied, -1.0, y)
    gap = x_apart - y_apart     # |gap| as a where: abs's double backward imports torch._dynamo (seconds)
    log_size = log_scale + torch.maximum(x_apart, y_apart) + log1mexp(-torch.where(gap > 0, gap, -gap))
    limit = torch.log(torch.as_tensor(cap, dtype=x.dtype, device=x.device))
    log_size = torch.where(x_apart > y_apart, torch.minimum(log_size, limit), log_size)
    apart = torch.sign(x_apart - y_apart) * log_size.exp()
    x_tied, y_tied = torch.where(tied, x, 0.0), torch.where(tied, y, 0.0)
    anchor = x_tied.detach()
    slope = torch.exp(torch.clamp(log_scale + anchor, max=math.log(torch.finfo(x.dtype).max) - 1))
    tied_value = slope * (torch.expm1(x_tied - anchor) - torch.expm1(y_tied - anchor))
    return torch.where(tied, tied_value, apart)


# ------------------------------------------------------------------------------ the run axis
def run_axis(value, name: str = "value", ndim: int = 3) -> torch.Tensor:
    """A scalar or ``[B]`` hyperparameter ``name`` as a float64 tensor: ``[]``, or ``[B, 1, …]``
    with ``ndim`` axes in all (default ``[B, 1, 1]``, against ``[P, Y]`` tables). ValueError on
    bad input."""
    values = hyper_values(value, name)
    return values if values.ndim == 0 else values.reshape(-1, *([1] * (ndim - 1)))


# ------------------------------------------------------------------------------ record indices
def flat_index(prompt: torch.Tensor, response: torch.Tensor, responses: int) -> torch.Tensor:
    """Index of (prompt, response) in a ``[..., P·Y]`` flattened table: prompt·Y + response."""
    return prompt * responses + response


# ------------------------------------------------------------------------------ counter-based random numbers
_SPLITMIX = tuple(c - (1 << 64) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))
"""SplitMix64's increment and multipliers as signed int64 (Steele, Lea, Flood, "Fast splittable
pseudorandom number generators", OOPSLA 2014; the constants of Vigna's splitmix64.c)."""


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic, so mask the copied sign bits)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def splitmix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's output function of state ``x`` + increment, on int64 tensors (arithmetic mod
    2^64 as two's-complement wrap-around, so the same bits on every device)."""
    increment, first, second = _SPLITMIX
    z = x + increment
    z = (z ^ _shift_right(z, 30)) * first
    z = (z ^ _shift_right(z, 27)) * second
    return z ^ _shift_right(z, 31)


def counter_uniform(seeds: torch.Tensor, step, count: int) -> torch.Tensor:
    """Uniform draws in [0, 1) ``[B, count]`` float64: draw j of run b at ``step`` is the top 53 bits
    of splitmix64(splitmix64(splitmix64(seed_b) + step) + j) over 2^53. A counter-based generator: each
    draw is a function of (seed, step, j) alone, so a run's draws do not depend on the other runs of
    its batch, and one call is one tensor program on ``seeds``' device. ``step`` may also be a 1-D
    int64 tensor of K steps: then ``[B, K, count]``, the same numbers as K separate calls."""
    step = torch.as_tensor(step, dtype=torch.int64, device=seeds.device)
    key = splitmix64(splitmix64(seeds.to(torch.int64)).reshape(-1, *([1] * step.ndim)) + step)
    draws = splitmix64(key[..., None] + torch.arange(count, device=seeds.device))
    return _shift_right(draws, 11).to(torch.float64) * 2.0**-53


# ------------------------------------------------------------------------------ bisection
def bisect(increasing, lo: torch.Tensor, hi: torch.Tensor, steps: int = BISECTION_STEPS) -> torch.Tensor:
    """Elementwise root of an increasing function with increasing(lo) ≤ 0 ≤ increasing(hi).

    Fixed ``steps`` halvings (no early exit, so every element of a batch does the same work);
    the answer is the bracket's midpoint, within (hi − lo)·2^{−steps−1} of a root."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        below = increasing(mid) < 0
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (lo + hi) / 2


# ------------------------------------------------------------------------------ comparison components
def per_component(ref_logp: torch.Tensor, labels: torch.Tensor, solve) -> torch.Tensor:
    """log π assembled from one solve per comparison component (``labels`` ``[P, Y]``, from
    ``toybench.graph.component_labels``): ``solve(inside, log_mass)`` returns log-probs
    (``[..., P, Y]``) used on the component's members, ``inside`` its ``[P, Y]`` mask and
    ``log_mass`` ``[P, 1]`` = log π_ref(C) (0 on prompts where C is empty; those rows are unused)."""
    out = None
    for k in range(int(labels.max()) + 1):
        inside = labels == k
        occupied = inside.any(-1, keepdim=True)
        log_mass = torch.logsumexp(torch.where(inside, ref_logp, -torch.inf), -1, keepdim=True)
        part = solve(inside, torch.where(occupied, log_mass, torch.zeros_like(log_mass)))
        out = torch.where(inside, part, -torch.inf if out is None else out)
    return out


def component_normalised(ref_logp: torch.Tensor, labels: torch.Tensor, logp_of, inverse) -> torch.Tensor:
    """log π = ``logp_of(c)`` with one constant c per comparison component, each component at its
    π_ref mass (docs/conventions.md, what solve returns), c by ``bisect``. ``logp_of(c)`` is
    increasing in c (``c`` broadcast ``[..., P, 1]``); ``inverse(v)`` gives, per response, the c at
    which its log-prob equals v (``[..., P, 1]``)."""

    def solve(inside, log_mass):
        log_size = inside.sum(-1, keepdim=True).clamp_min(1).to(ref_logp.dtype).log()
        occupied = inside.any(-1, keepdim=True)

        def component_min(values):
            return torch.where(occupied, torch.where(inside, values, torch.inf).amin(-1, keepdim=True), 0.0)

        low = component_min(inverse(log_mass - log_size))   # every member at mass/|C|: sum ≤ mass
        high = component_min(inverse(log_mass))              # one member at the whole mass: sum ≥ mass

        def excess(c):
            return torch.logsumexp(torch.where(inside, logp_of(c), -torch.inf), -1, keepdim=True) - log_mass

        return logp_of(bisect(excess, low, high))

    return per_component(ref_logp, labels, solve)


# ------------------------------------------------------------------------------ threads
@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController  # after SciPy is loaded, so its OpenBLAS is seen
    return ThreadpoolController()


def one_blas_thread():
    """Context manager: the BLAS libraries loaded so far (NumPy's and SciPy's OpenBLAS) use one
    thread inside it. SciPy's optimisers here work on a few dozen numbers, where each BLAS call
    that wakes OpenBLAS's threads costs far more than it computes: on 2 contended cores an L-BFGS-B
    run on 4 logits took ~0.5 s instead of a few ms (measured here). Only the time changes."""
    return _blas_controller().limit(limits=1, user_api="blas")


@contextlib.contextmanager
def single_threaded():
    """Context manager: torch's intra-op threads and BLAS (``one_blas_thread``) at one thread inside,
    torch's previous thread count restored after. For tensor programs of a few thousand numbers
    (claims, toy experiments), where threads cannot help and, on contended cores, a parallel
    region waits for a descheduled worker: a [5, 4, 16]·[5, 16, 64] ``baddbmm`` took ~16 ms with
    2 threads and 64 µs with one (torch 2.13, OpenMP, 2 loaded cores; measured here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with one_blas_thread():
            yield
    finally:
        torch.set_num_threads(threads)
