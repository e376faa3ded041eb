"""TinyTransformer's closed-form backward (``vjp``) against autograd through ``logp()`` and
against central finite differences, in float64; its activation tape is not reused after the
parameters change; and the prefix-state forward against a plain per-string forward (every
string of max_len − 1 tokens teacher-forced with a causal mask), written here."""
import math

import numpy as np
import pytest
import torch
from test_sequence_policies import perturbed

import toybench as tb
from toybench.policies import logp_and_vjp
from toybench.transformer import TinyTransformer

CASES = {
    "two_layers_three_heads": (tb.SequenceSpace(3, 3), 2, dict(width=6, layers=2, heads=3)),
    "min_len_2": (tb.SequenceSpace(2, 4, min_len=2), 1, dict(width=4, layers=1, heads=2)),
    "row_chunk": (tb.SequenceSpace(2, 3), 2, dict(width=4, layers=2, heads=1, row_chunk=3)),
    "flat": (tb.FlatSpace(5), 2, dict(width=4, layers=1, heads=2)),
}


def case(name, runs=2):
    space, prompts, config = CASES[name]
    prob = tb.Problem.random(space, prompts=prompts, seed=3)
    return perturbed(TinyTransformer(prob, runs=runs, seed=5, dtype=torch.float64, **config))


def weights_like(policy, seed=7):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(policy.runs, policy.problem.P, policy.problem.Y, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("name", list(CASES))
def test_vjp_equals_autograd_of_the_weighted_log_probs(name):
    policy = case(name)
    grad_logp = weights_like(policy)
    expected = torch.autograd.grad((grad_logp * policy.logp()).sum(), policy.parameters())
    logp, vjp = logp_and_vjp(policy)                  # the training path: no-grad forward, then vjp
    np.testing.assert_allclose(logp, policy.logp().detach(), atol=1e-13)
    got = vjp(grad_logp)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_vjp_matches_central_differences():
    """Σ_θ vjp(g)·u against (F(θ + hu) − F(θ − hu))/(2h), F = Σ g·logp, h = 1e-5 (error O(h²))."""
    policy = case("two_layers_three_heads", runs=1)
    grad_logp = weights_like(policy)
    params = policy.parameters()
    gen = torch.Generator().manual_seed(11)
    direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    with torch.no_grad():
        policy.logp()
        analytic = sum((g * u).sum() for g, u in zip(policy.vjp(grad_logp), direction, strict=True)).item()
    h = 1e-5

    def shifted(sign):
        with torch.no_grad():
            for p, u in zip(params, direction, strict=True):
                p.add_(sign * h * u)
            out = (grad_logp * policy.logp()).sum().item()
            for p, u in zip(params, direction, strict=True):
                p.sub_(sign * h * u)
        return out

    assert analytic == pytest.approx((shifted(1) - shifted(-1)) / (2 * h), rel=1e-6, abs=1e-9)


def test_vjp_after_a_parameter_change_uses_the_new_parameters():
    policy = case("two_layers_three_heads")
    grad_logp = weights_like(policy)
    with torch.no_grad():
        policy.logp()                                  # activations of the old parameters
        for param in policy.parameters():
            param.mul_(0.9)
        got = policy.vjp(grad_logp)
    expected = torch.autograd.grad((grad_logp * policy.logp()).sum(), policy.parameters())
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def naive_string_forward(policy, b, p):
    """States of every string of max_len − 1 tokens (prompt first), teacher-forced through the
    plain causal transformer with a full lower-triangular mask: ``[V^(max_len−1), max_len, d]``."""
    tree, d, H = policy.tree, policy.width, policy.heads
    L = tree.max_len
    strings = torch.cartesian_prod(*[torch.arange(tree.vocab)] * (L - 1)).reshape(-1, L - 1)
    x = torch.cat([policy.prompt_embedding[b, p].expand(len(strings), 1, d),
                   policy.token_embedding[b][strings]], 1) + policy.position_embedding[b]
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    for block in policy.blocks:
        q, k, v = (torch.nn.functional.layer_norm(x, (d,)) @ block["qkv"][b]).split(d, -1)
        heads = []
        for h in range(H):
            cols = slice(h * d // H, (h + 1) * d // H)
            scores = (q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(d // H)).masked_fill(~causal, -math.inf)
            heads.append(torch.softmax(scores, -1) @ v[..., cols])
        x = x + torch.cat(heads, -1) @ block["out"][b]
        x = x + torch.nn.functional.gelu(torch.nn.functional.layer_norm(x, (d,)) @ block["up"][b]) @ block["down"][b]
    return strings, torch.nn.functional.layer_norm(x, (d,))


def test_prefix_states_equal_a_teacher_forced_string_forward():
    prob = tb.Problem.random(tb.SequenceSpace(3, 4), prompts=2, seed=1)
    policy = perturbed(TinyTransformer(prob, runs=2, width=6, layers=2, heads=2, seed=4, dtype=torch.float64))
    states = policy.context_states().detach()
    space = prob.space
    for b in range(2):
        for p in range(2):
            strings, naive = naive_string_forward(policy, b, p)
            for row, string in enumerate(strings.tolist()):
                for depth in range(space.max_len):    # position depth holds the prefix of `depth` tokens
                    prefix = space.index(string[:depth]) if depth else None
                    node = 0 if prefix is None else int(space.response_prefix[prefix])
                    np.testing.assert_allclose(states[b, p, node], naive[row, depth].detach(), atol=1e-12)
