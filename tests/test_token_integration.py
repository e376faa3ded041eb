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


def test_token_views_have_finite_second_derivatives():
    """tb.solve's Newton polish differentiates the token views twice: the Hessian of a smooth
    function of every allowed log π(a|s) must be finite, also when short prefixes are no response."""
    for space in (tb.SequenceSpace(2, 2), tb.SequenceSpace(2, 3, min_len=2)):
        table = torch.randn(1, space.size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        table = table.log_softmax(-1).requires_grad_(True)
        token = space.token_logp(table)
        value = torch.where(torch.isfinite(token), token, 0.0).pow(2).sum()
        (grad,) = torch.autograd.grad(value, table, create_graph=True)
        rows = [torch.autograd.grad(grad[0, i], table, retain_graph=True)[0] for i in range(space.size)]
        assert torch.isfinite(torch.stack(rows)).all()


def test_solve_certifies_token_dpo_at_its_closed_form():
    """token_dpo's exact minimiser is π*_β (closed form, float64): solve returns it, certified."""
    prob = tb.Problem.random(tb.SequenceSpace(2, 2), seed=0)
    loss = tb.losses.make("token_dpo", beta=0.5)
    solution = tb.solve(loss, tb.population(prob))
    assert solution.certificate <= 1e-8
    assert tb.metrics.tv(solution.logp, tb.optima.reverse_kl(prob, 0.5)) < 1e-9


def test_loss_side_of_a_token_loss_is_autograd_of_the_objective():
    """``LossGrads`` on a token-level loss: value and ∂L/∂log π equal the objective and its autograd
    gradient, for the full data and for a given mini-batch."""
    from toybench.loss_grads import LossGrads
    from toybench.objective import objective
    prob = tb.Problem.random(tb.SequenceSpace(2, 2), prompts=2, seed=1)
    loss, pairs = tb.losses.make("d3po"), tb.population(prob)
    batch = tb.sample_pairs(prob, n=5, seed=[3, 4])
    logp = torch.log_softmax(torch.randn(2, 2, prob.Y, dtype=torch.float64,
                                         generator=torch.Generator().manual_seed(2)), -1)
    side = LossGrads(loss, pairs, 2, like=logp)
    table = logp.clone().requires_grad_(True)
    for records in (pairs, batch):
        value = objective(loss, table, records)
        (grad,) = torch.autograd.grad(value.sum(), table)
        torch.testing.assert_close(side.grad(logp, None if records is pairs else records), grad)
    torch.testing.assert_close(side.value(logp), objective(loss, logp, pairs).expand(2))
