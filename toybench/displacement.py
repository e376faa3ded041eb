"""Likelihood displacement measured exactly: trajectories of whole log-prob tables along training.

``trajectory`` records the exact table ``[S, B, P, Y]`` (float64) every ``every`` steps of plain
full-batch gradient descent (SGD, or Adam with torch's defaults) on Σ_b 𝓛_b, all B runs in one program; the curves
below are pure functions of those snapshots, so every number is an exact sum over the space:

- ``curves``: per snapshot and run, the record-weighted mean chosen and rejected log-prob change
  from the start, the chosen mass change, the mass gained by responses never in the data
  (``tb.metrics.displacement``), the entropy, and the squeezing gain of the initially most likely
  response. The "3D properties" of Yan et al. (arXiv 2406.07327) are the **d**rop of the rejected
  log-prob (``rejected_logp_change``), the **d**egradation of the chosen one
  (``chosen_logp_change`` < 0) and the **d**ispersion to unseen responses (``unseen_mass_gain``).
- ``logit_rates``: for a ``LogLinear`` policy (fixed unembeddings φ, trainable hidden vector h,
  Razin et al., arXiv 2410.08847, Thm. 2) one DPO record moves h along c·(φ_w − φ_l), c > 0,
  so d/dt ln π(y) = c·⟨φ_y − φ̄, φ_w − φ_l⟩ with φ̄ = Σ_y π(y)φ_y: a negative rate for y = w is
  likelihood displacement of the chosen response.
- ``razin_construction``: the three-response instance where DPO lowers the chosen response from
  its first step (φ_w = (1, 0.1), φ_l = (1, −0.1), φ_z = (0, 1), base log(0.6, 0.3, 0.1), h = 0);
  any registered loss can be trained on it (the regularisers DPOP, RPO and Flex-DPO, say).
- ``probability_gradients``: ∂L/∂π(y_w) and ∂L/∂π(y_l) of a per-record loss, treating the two
  probabilities as free variables (the "probability-space" view of Yan et al., arXiv 2406.07327,
  which ignores the softmax Jacobian); for DPO their ratio is −π_w/π_l.
- ``ches``: the CHES score of Razin et al. (Thm. 3) for a ``TinyTransformer``, per record:
  ⟨Σ_k h(y⁺_{<k}), Σ_k h(y⁻_{<k})⟩ − ‖Σ_k h(y⁺_{<k})‖², h the final state of each step's context
  (steps whose EOS is forced have no state and add 0); large values predict a falling chosen response.
- ``squeeze_step``: the exact tabular softmax step of a negative gradient on one label (Ren &
  Sutherland, arXiv 2407.10490): p′_i ∝ p_i·e^{η p_i} (i ≠ ȳ), p′_ȳ ∝ p_ȳ·e^{−η(1 − p_ȳ)}.
"""
from __future__ import annotations

import torch

from . import metrics
from .losses import make
from .objective import objective
from .pairs import Pairs
from .problem import Problem
from .shared_policies import LogLinear
from .spaces import FlatSpace

OPTIMISERS = ("sgd", "adam")
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
"""torch.optim.Adam's defaults; the update is written out (the same arithmetic) so that recording a
trajectory does not import torch.optim's compiler machinery (seconds on first use)."""


def trajectory(policy, loss, pairs, steps: int, lr: float = 0.1, optimizer: str = "sgd", every: int = 1):
    """Snapshots of ``policy.logp()`` (float64 ``[S, B, P, Y]``, S = steps // every + 1, the start
    included) and their step numbers, training ``policy`` in place on the exact objective."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    if optimizer not in OPTIMISERS:
        raise ValueError(f"optimizer={optimizer!r} is not one of {OPTIMISERS}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    params = policy.parameters()
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    snapshots, marks = [policy.logp().detach().to(torch.float64)], [0]
    for step in range(1, steps + 1):
        grads = torch.autograd.grad(objective(loss, policy.logp(), pairs).sum(), params)
        with torch.no_grad():
            for param, grad, (first, second) in zip(params, grads, moments, strict=True):
                if optimizer == "sgd":
                    param.sub_(lr * grad)
                    continue
                first.mul_(ADAM_BETAS[0]).add_((1 - ADAM_BETAS[0]) * grad)
                second.mul_(ADAM_BETAS[1]).add_((1 - ADAM_BETAS[1]) * grad * grad)
                scale = lr / (1 - ADAM_BETAS[0] ** step)
                param.sub_(scale * first / ((second / (1 - ADAM_BETAS[1] ** step)).sqrt() + ADAM_EPS))
        if step % every == 0:
            snapshots.append(policy.logp().detach().to(torch.float64))
            marks.append(step)
    return torch.stack(snapshots), torch.tensor(marks)


def squeezing_gain(logp_before: torch.Tensor, logp_after: torch.Tensor, prompt_weights=None) -> torch.Tensor:
    """ρ-weighted π_t(y⁺|x) − π_0(y⁺|x) for y⁺ = argmax_y π_0(y|x), the initially most likely response
    (``[...]``; ties take the first index)."""
    top = logp_before.argmax(-1, keepdim=True)
    gain = logp_after.gather(-1, top.expand(*logp_after.shape[:-1], 1)).exp() - logp_before.gather(-1, top).exp()
    rho = torch.full(gain.shape[-2:-1], 1.0 / gain.shape[-2], dtype=gain.dtype) if prompt_weights is None \
        else torch.as_tensor(prompt_weights, dtype=gain.dtype)
    return (gain[..., 0] * rho).sum(-1)


def curves(snapshots: torch.Tensor, pairs: Pairs) -> dict:
    """Displacement curves ``[S, B]`` from ``trajectory``'s snapshots (see the module docstring)."""
    start = snapshots[0]
    rho = pairs.problem.prompt_weights
    out = metrics.displacement(start, snapshots, pairs)
    out["entropy"] = metrics.entropy(snapshots, prompt_weights=rho)
    out["squeezing_gain"] = squeezing_gain(start, snapshots, rho)
    return out


def logit_rates(features: torch.Tensor, logp: torch.Tensor, chosen: int, rejected: int) -> torch.Tensor:
    """⟨φ_y − φ̄, φ_w − φ_l⟩ for every response y (``features`` ``[Y, D]``, ``logp`` ``[Y]``): the
    direction of d/dt ln π(y) when a DPO record (w ≻ l) moves the hidden vector (a positive multiple)."""
    features, probs = torch.as_tensor(features, dtype=torch.float64), logp.to(torch.float64).exp()
    centred = features - probs @ features
    return centred @ (features[chosen] - features[rejected])


def razin_construction(dtype=torch.float64, runs: int = 1, loss=None):
    """(policy, loss, pairs): LogLinear over 3 one-token responses (lengths 1, for length-aware
    losses), φ = ((1, 0.1), (1, −0.1), (0, 1)), base logits log(0.6, 0.3, 0.1) = log π_ref, hidden
    h = 0, one record 0 ≻ 1; ``loss`` default DPO β = 1."""
    base = torch.tensor([[0.6, 0.3, 0.1]], dtype=torch.float64).log()
    prob = Problem(FlatSpace(3, lengths=[1.0, 1.0, 1.0]), base, reward=torch.zeros(1, 3, dtype=torch.float64))
    features = torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.0, 1.0]], dtype=torch.float64)
    policy = LogLinear(prob, features, runs=runs, dtype=dtype)
    return policy, make("dpo", beta=1.0) if loss is None else loss, Pairs.from_records(prob, [(0, 0, 1)])


def probability_gradients(loss, chosen_prob, rejected_prob, ref_chosen_logp=None, ref_rejected_logp=None,
                          **inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂L/∂π_w, ∂L/∂π_l) ``[B, N]`` of ``loss``'s per-record value at probabilities ``chosen_prob``,
    ``rejected_prob`` in (0, 1] (``[B, N]``; log-probs are their logs, references default 0), by
    autograd with the two probabilities as independent variables. ``inputs``: extra per-record
    inputs a loss needs (``chosen_len``, ...)."""
    chosen = torch.as_tensor(chosen_prob, dtype=torch.float64).detach().clone().requires_grad_(True)
    rejected = torch.as_tensor(rejected_prob, dtype=torch.float64).detach().clone().requires_grad_(True)
    if chosen.ndim != 2 or chosen.shape != rejected.shape:
        raise ValueError(f"chosen_prob and rejected_prob must be [B, N] of one shape, got {tuple(chosen.shape)} "
                         f"and {tuple(rejected.shape)}")
    if not bool(((chosen > 0) & (chosen <= 1) & (rejected > 0) & (rejected <= 1)).all()):
        raise ValueError("chosen_prob and rejected_prob must be probabilities in (0, 1]")
    zeros = torch.zeros_like(chosen)
    refs = [zeros if ref is None else torch.as_tensor(ref, dtype=torch.float64, device=zeros.device).expand_as(zeros)
            for ref in (ref_chosen_logp, ref_rejected_logp)]
    value = loss(chosen.log(), rejected.log(), *refs, **inputs).sum()
    return torch.autograd.grad(value, (chosen, rejected))


def ches(policy, pairs: Pairs) -> torch.Tensor:
    """CHES per record ``[B, N]`` (see the module docstring) from ``policy.context_states()``."""
    if not hasattr(policy, "context_states"):
        raise ValueError(f"ches needs a policy with hidden states (TinyTransformer), got {type(policy).__name__}")
    tree = policy.tree
    states = policy.context_states()                                             # [B, P, N, d]
    mask = tree.step_mask.to(states.device)
    per_string = (states[:, :, tree.step_prefix.to(states.device)] * mask[..., None]).sum(-2)   # [B, P, Y, d]
    prompt = pairs.prompt.to(states.device)

    def gather(responses):
        rows = torch.arange(states.shape[0], device=states.device)[:, None]
        return per_string[rows, prompt, responses.to(states.device)]             # [B, N, d]

    chosen, rejected = gather(pairs.chosen), gather(pairs.rejected)
    return (chosen * rejected).sum(-1) - (chosen * chosen).sum(-1)


def squeeze_step(logp: torch.Tensor, label: int, lr: float) -> torch.Tensor:
    """log p′ after one step z ← z − η(e_ȳ − p) of a tabular softmax (gradient ascent on −log p_ȳ's
    negative, i.e. pushing label ȳ down), ``[..., K]`` → ``[..., K]``."""
    probs = logp.exp()
    push = -lr * torch.nn.functional.one_hot(torch.tensor(label), logp.shape[-1]).to(logp.dtype)
    return torch.log_softmax(logp + push + lr * probs, -1)

