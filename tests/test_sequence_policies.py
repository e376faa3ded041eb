"""Token-factorised policies: normalisation over the enumerated space, per-token vs sequence
consistency (a walk along each string in Python), B runs = B single runs, gradients against
central finite differences in float64, an independent per-prefix transformer forward, and the
best point of each class (fit_best) against tb.solve and π*."""
import math

import numpy as np
import pytest
import torch

import toybench as tb
from toybench.autoregressive import AutoregressiveTabular, check_normalised
from toybench.fit_best import fit_best
from toybench.objective import objective
from toybench.shared_policies import MLP, LogLinear
from toybench.transformer import TinyTransformer


def seq_problem(vocab=2, max_len=3, prompts=2, seed=0, pair_dist="uniform"):
    return tb.Problem.random(tb.SequenceSpace(vocab, max_len), prompts=prompts, seed=seed, pair_dist=pair_dist)


def features(prob, dim=3, seed=0):
    return torch.randn(prob.Y, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def perturbed(policy, seed=1, scale=0.5):
    """Move every parameter off its start (zero-initialised heads included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(scale * torch.randn(param.shape, generator=gen, dtype=torch.float64).to(param.dtype))
    return policy


def builders(prob):
    return {
        "autoregressive_tabular": lambda runs, seed: AutoregressiveTabular(prob, runs, init_scale=0.5, seed=seed,
                                                                          dtype=torch.float64),
        "loglinear": lambda runs, seed: LogLinear(prob, features(prob), runs, init_scale=0.5, seed=seed,
                                                  dtype=torch.float64),
        "mlp": lambda runs, seed: MLP(prob, runs, embed=3, hidden=5, seed=seed, dtype=torch.float64),
        "transformer": lambda runs, seed: TinyTransformer(prob, runs, width=4, layers=2, heads=2, seed=seed,
                                                          dtype=torch.float64),
    }


KINDS = ["autoregressive_tabular", "loglinear", "mlp", "transformer"]


@pytest.mark.parametrize("kind", KINDS)
def test_normalised_and_per_token_consistent(kind):
    prob = seq_problem()
    policy = perturbed(builders(prob)[kind](2, 0))
    space = prob.space
    logp = check_normalised(policy)
    np.testing.assert_allclose(torch.logsumexp(logp, -1).detach(), 0.0, atol=1e-12)
    token = policy.token_logp().detach()
    assert token.shape == (2, prob.P, space.prefixes, space.actions)
    assert torch.isneginf(token[..., ~space.allowed]).all()
    np.testing.assert_allclose(torch.logsumexp(token, -1), 0.0, atol=1e-12)
    # walk each string along the tree in Python and add its steps
    for y in range(space.size):
        s, total = 0, torch.zeros(2, prob.P, dtype=torch.float64)
        tokens = [int(t) for t in space.tokens[y, : int(space.lengths[y])]]
        for a in tokens:
            total += token[:, :, s, a]
            s = int(space.child[s, a])
        total += token[:, :, s, space.eos]
        np.testing.assert_allclose(logp[:, :, y].detach(), total, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_policies_start_at_reference_or_at_their_seeded_draw(kind):
    prob = seq_problem(prompts=1)
    policy = builders(prob)[kind](1, 0)
    if kind in ("mlp", "transformer"):       # zero output heads: exactly π_ref
        np.testing.assert_allclose(policy.logp()[0].detach(), prob.ref_logp, atol=1e-12)
    again = builders(prob)[kind](1, 0)
    assert torch.equal(policy.logp(), again.logp())


@pytest.mark.parametrize("kind", KINDS)
def test_batched_runs_equal_single_runs(kind):
    prob = seq_problem()
    pairs = tb.population(prob)
    loss = tb.losses.make("dpo", beta=0.5)
    batched = perturbed(builders(prob)[kind](3, 7), seed=11)
    values = objective(loss, batched.logp(), pairs)
    grads = torch.autograd.grad(values.sum(), batched.parameters())
    for b in range(3):
        single = builders(prob)[kind](1, 7 + b)
        with torch.no_grad():   # the same perturbation as run b got
            for param, big in zip(single.parameters(), batched.parameters(), strict=True):
                param.copy_(big[b : b + 1].detach())
        value = objective(loss, single.logp(), pairs)
        assert value.item() == pytest.approx(values[b].item(), abs=1e-12)
        for g_single, g_batched in zip(torch.autograd.grad(value.sum(), single.parameters()), grads, strict=True):
            np.testing.assert_allclose(g_single[0], g_batched[b], atol=1e-12)
    # and the initial draws themselves: run b of seed s is the one-run policy of seed s + b
    fresh = builders(prob)[kind](3, 7)
    for b in range(3):
        np.testing.assert_allclose(fresh.logp()[b].detach(), builders(prob)[kind](1, 7 + b).logp()[0].detach(),
                                   atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_matches_central_differences(kind):
    """Directional derivative of the population DPO objective along a random direction:
    autograd vs (L(θ + hv) − L(θ − hv))/(2h), h = 1e-5 (truncation error O(h²) ≈ 1e-10)."""
    prob = seq_problem(prompts=1)
    pairs = tb.population(prob)
    loss = tb.losses.make("dpo", beta=0.5)
    policy = perturbed(builders(prob)[kind](1, 3), seed=4, scale=0.3)
    params = policy.parameters()
    gen = torch.Generator().manual_seed(9)
    direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    value = objective(loss, policy.logp(), pairs).sum()
    analytic = sum((g * d).sum() for g, d in zip(torch.autograd.grad(value, params), direction, strict=True)).item()
    h = 1e-5

    def shifted(sign):
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p.add_(sign * h * d)
            out = objective(loss, policy.logp(), pairs).sum().item()
            for p, d in zip(params, direction, strict=True):
                p.sub_(sign * h * d)
        return out

    numeric = (shifted(1) - shifted(-1)) / (2 * h)
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def reference_transformer_token_logp(policy, b, p, prefix_tokens):
    """One run, one prompt, one prefix: the output-head logits of the plain causal transformer."""
    return reference_transformer_state(policy, b, p, prefix_tokens) @ policy.head[b]


def reference_transformer_state(policy, b, p, prefix_tokens):
    """One run, one prompt, one prefix: the final normalised state of the plain causal transformer
    run on that prefix alone."""
    def ln(x):
        return torch.nn.functional.layer_norm(x, x.shape[-1:])

    d, H = policy.width, policy.heads
    x = torch.stack([policy.prompt_embedding[b, p]] + [policy.token_embedding[b, t] for t in prefix_tokens])
    x = x + policy.position_embedding[b, : len(x)]
    n = len(x)
    for block in policy.blocks:
        q, k, v = (ln(x) @ block["qkv"][b]).split(d, -1)
        heads = []
        for h in range(H):
            cols = slice(h * d // H, (h + 1) * d // H)
            scores = q[:, cols] @ k[:, cols].T / math.sqrt(d // H)
            scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), -math.inf)
            heads.append(torch.softmax(scores, -1) @ v[:, cols])
        x = x + torch.cat(heads, -1) @ block["out"][b]
        x = x + torch.nn.functional.gelu(ln(x) @ block["up"][b]) @ block["down"][b]
    return ln(x)[-1]


def test_transformer_teacher_forcing_matches_a_per_prefix_forward():
    prob = seq_problem(vocab=3, max_len=3, prompts=2)
    policy = perturbed(TinyTransformer(prob, runs=2, width=6, layers=2, heads=3, seed=1, dtype=torch.float64))
    space = prob.space
    token = policy.token_logp().detach()
    ref_token = space.token_logp(prob.ref_logp)
    for b in range(2):
        for p in range(2):
            for s in range(space.prefixes):
                depth = int(space.depth[s])
                if depth == space.max_len:
                    assert token[b, p, s, space.eos] == 0
                    continue
                logits = ref_token[p, s] + reference_transformer_token_logp(
                    policy, b, p, space.prefix_tokens[s, :depth].tolist()).detach()
                logits = logits.masked_fill(~space.allowed[s], -math.inf)
                np.testing.assert_allclose(token[b, p, s], torch.log_softmax(logits, -1), atol=1e-12)


def test_transformer_row_chunks_give_the_same_numbers():
    prob = seq_problem(vocab=3, max_len=3, prompts=1)
    whole = perturbed(TinyTransformer(prob, width=4, seed=2, dtype=torch.float64))
    chunked = TinyTransformer(prob, width=4, seed=2, dtype=torch.float64, row_chunk=2)
    with torch.no_grad():
        for a, c in zip(whole.parameters(), chunked.parameters(), strict=True):
            c.copy_(a)
    np.testing.assert_allclose(whole.logp().detach(), chunked.logp().detach(), atol=1e-13)


def test_autoregressive_tabular_reaches_the_tabular_optimum():
    """The class's best point (fit_best) equals tb.solve's simplex minimiser and π*_β."""
    prob = seq_problem(vocab=2, max_len=2, prompts=2)
    pairs = tb.population(prob)
    loss = tb.losses.make("dpo", beta=1.0)
    fit = fit_best(AutoregressiveTabular(prob, init_scale=1.0), loss, pairs, starts=2)
    assert fit.certified
    solved = tb.solve(loss, pairs).logp
    assert tb.metrics.tv(fit.logp, solved).max().item() <= 1e-6
    assert tb.metrics.tv(fit.logp, tb.optima.reverse_kl(prob, 1.0)).max().item() <= 1e-6


def test_batched_training_by_plain_autograd_lowers_every_run():
    prob = seq_problem(vocab=2, max_len=2, prompts=1)
    pairs = tb.population(prob)
    loss = tb.losses.make("dpo", beta=1.0)
    policy = TinyTransformer(prob, runs=4, width=8, seed=0)
    optimiser = torch.optim.Adam(policy.parameters(), lr=0.05)
    start = objective(loss, policy.logp(), pairs).detach()
    for _ in range(30):
        optimiser.zero_grad()
        objective(loss, policy.logp(), pairs).sum().backward()
        optimiser.step()
    end = objective(loss, policy.logp(), pairs).detach()
    assert (end < start).all()


def test_restricted_class_best_is_farther_from_pistar_than_tabular():
    """A 1-feature LogLinear cannot represent π*_β on 6 strings: its certified best is a different point."""
    prob = seq_problem(vocab=2, max_len=2, prompts=1)
    pairs = tb.population(prob)
    loss = tb.losses.make("dpo", beta=1.0)
    fit = fit_best(LogLinear(prob, features(prob, dim=1)), loss, pairs, starts=1)
    assert fit.certified and fit.grad_norm <= 1e-8
    assert tb.metrics.tv(fit.logp, tb.optima.reverse_kl(prob, 1.0)).item() > 1e-3
    assert fit.value > tb.solve(loss, pairs).value


def test_bad_input():
    flat = tb.Problem.random(tb.FlatSpace(4))
    with pytest.raises(ValueError, match="needs a Problem over a SequenceSpace"):
        AutoregressiveTabular(flat)
    prob = seq_problem()
    with pytest.raises(ValueError, match="features must be finite"):
        LogLinear(prob, torch.zeros(prob.Y + 1, 2))
    with pytest.raises(ValueError, match="divisible"):
        TinyTransformer(prob, width=5, heads=2)
    with pytest.raises(ValueError, match="layers"):
        TinyTransformer(prob, layers=0)

    class Unnormalised:
        problem, runs = prob, 1

        def logp(self):
            return torch.zeros(1, prob.P, prob.Y)

    with pytest.raises(ValueError, match="must be normalised"):
        check_normalised(Unnormalised())
    with pytest.raises(ValueError, match="starts"):
        fit_best(AutoregressiveTabular(prob), tb.losses.make("dpo"), tb.population(prob), starts=0)


def test_flat_space_mlp_and_transformer_are_one_step_policies():
    prob = tb.Problem.random(tb.FlatSpace(5), prompts=2, seed=1)
    for policy in (MLP(prob, runs=2, dtype=torch.float64), TinyTransformer(prob, runs=2, dtype=torch.float64)):
        np.testing.assert_allclose(policy.logp().detach(), prob.ref_logp.expand(2, -1, -1), atol=1e-12)
        perturbed(policy)
        np.testing.assert_allclose(torch.logsumexp(policy.logp(), -1).detach(), 0.0, atol=1e-12)
