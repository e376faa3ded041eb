"""Token-level losses train through ``tb.train``: their ∂L/∂log π is autograd of the objective
over the per-token views of the whole table (``toybench.loss_grads``)."""
import torch

import toybench as tb


def test_token_dpo_trains_to_the_reverse_kl_optimum():
    """token_dpo's population minimiser is π*_β = π_ref·e^{r/β}/Z (Rafailov et al., arXiv 2404.12358, §4): the
    closed form from ``tb.optima.reverse_kl`` is the reference, exact in float64. Full-batch Adam
    from π_ref contracts to it; 400 steps at lr 0.05 leave TV ≈ 1e-9 (1e-6 allowed)."""
    prob = tb.Problem.random(tb.SequenceSpace(2, 2), prompts=2, seed=3)
    policy = tb.Tabular(prob, runs=2, dtype=torch.float64)
    betas = torch.tensor([1.0, 2.0], dtype=torch.float64)
    tb.train(policy, tb.losses.make("token_dpo", beta=betas), tb.population(prob), steps=400, lr=0.05)
    target = tb.optima.reverse_kl(prob, betas)
    tv = tb.metrics.tv(policy.logp().detach(), target, prompt_weights=prob.prompt_weights)
    assert (tv < 1e-6).all(), tv


def test_a_token_level_step_follows_the_autograd_gradient_in_the_logits():
    """One SGD step moves the tabular logits by −lr·∂L/∂s, with ∂L/∂s from autograd of the
    objective through log_softmax (a path that shares nothing with ``loss_grads``' chain rule)."""
    prob = tb.Problem.random(tb.SequenceSpace(2, 2), prompts=1, seed=5)
    loss, pairs = tb.losses.make("ld_dpo", beta=0.5, alpha=0.4), tb.population(prob)
    policy = tb.Tabular(prob, runs=1, dtype=torch.float64)
    start = [p.detach().clone() for p in policy.parameters()][0]
    logits = start.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(tb.objective.objective(loss, torch.log_softmax(logits, -1), pairs).sum(), logits)
    tb.train(policy, loss, pairs, steps=1, lr=0.1, optimizer="sgd")
    moved = policy.parameters()[0].detach() - start
    torch.testing.assert_close(moved, -0.1 * grad, rtol=1e-10, atol=1e-13)
