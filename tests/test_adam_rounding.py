"""Adam turns a rounding residue into a full step; ``train`` keeps exact zeros exact
(docs/conventions.md, "Adam and rounding").

Independent references: Adam's first step in closed form, lr·g/(|g| + ε) (Kingma & Ba, arXiv
1412.6980, Algorithm 1), torch.optim.Adam on autograd gradients, and the hand fact that on the
IPO bandit's D3 as printed ({(a,b), (b,a)}) action c is in no record and the loss depends on
the logits only through s_a − s_b, so ∂L/∂s_c = 0 exactly.
"""
import pytest
import torch

from toybench._numerics import single_threaded
from toybench.experiments import ipo_bandit
from toybench.loss_grads import LossGrads
from toybench.losses import make
from toybench.objective import objective
from toybench.policies import Tabular
from toybench.train import ADAM_EPS, _Optimizer, _Sampler, train

LR, STEPS, TAUS = 0.01, 400, (0.1, 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_first_step_is_lr_times_g_over_abs_g_plus_eps(dtype):
    # a float32-sized residue (1e-7), a float64-sized one (1e-16) and a real gradient (1)
    grad = torch.tensor([[1e-7, 1e-16, 1.0]], dtype=dtype)
    ours = torch.zeros(1, 3, dtype=dtype)
    _Optimizer("adam", [ours], torch.tensor(LR, dtype=torch.float64)).step([grad])
    theirs = torch.zeros(1, 3, dtype=dtype, requires_grad=True)
    theirs.grad = grad.clone()
    torch.optim.Adam([theirs], lr=LR).step()
    g = grad.double()
    closed_form = -LR * g / (g.abs() + ADAM_EPS)
    rtol = 4 * torch.finfo(dtype).eps
    torch.testing.assert_close(ours.double(), closed_form, rtol=rtol, atol=0)
    torch.testing.assert_close(theirs.detach().double(), closed_form, rtol=rtol, atol=0)
    assert float(-ours[0, 0]) > 0.9 * LR > 1e6 * float(-ours[0, 1])   # the residue 1e-7 moves as far as 1 does


def test_a_residue_in_the_summed_gradient_reaches_an_unrecorded_response():
    # the softmax Jacobian g − π·Σg hands any residue of Σg to response c (g_c = 0)
    policy = Tabular(ipo_bandit.problem(), runs=1)
    residue = 4 * torch.finfo(torch.float32).eps     # a few float32 ulps of |g| ≈ 3.3
    leaked = policy.vjp(torch.tensor([[[10 / 3 + residue, -10 / 3, 0.0]]]))[0][0, 0, 2]
    exact = policy.vjp(torch.tensor([[[10 / 3, -10 / 3, 0.0]]]))[0][0, 0, 2]
    assert float(exact) == 0.0
    assert abs(float(leaked)) > ADAM_EPS          # then Adam moves θ_c by ~lr (previous test)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_train_keeps_an_unrecorded_logit_exactly_like_torch_adam(dtype):
    pairs, runs = ipo_bandit.dataset("D3_printed"), len(TAUS) * 3
    loss = make("ipo", beta=torch.tensor(TAUS, dtype=torch.float64).repeat_interleave(3))
    with single_threaded():
        policy = Tabular(ipo_bandit.problem(), runs=runs, dtype=dtype)
        start = policy.logits.detach().clone()
        train(policy, loss, pairs, steps=STEPS, optimizer="adam", lr=LR, batch_size=9, seed=0, log_every=STEPS)
        # torch.optim.Adam on autograd gradients of the same mini-batches (train's sampler, same seed)
        logits = start.clone().requires_grad_(True)
        adam, sampler = torch.optim.Adam([logits], lr=LR), _Sampler(pairs, runs, 9, torch.arange(runs))  # seed=0: runs 0..B-1
        for _ in range(STEPS):
            adam.zero_grad()
            objective(loss, torch.log_softmax(logits, -1), sampler.draw()).sum().backward()
            adam.step()
    assert torch.equal(policy.logits.detach()[..., 2], start[..., 2])      # θ_c never moved
    assert torch.equal(logits.detach()[..., 2], start[..., 2])
    assert not torch.equal(policy.logits.detach()[..., 0], start[..., 0])  # while θ_a did
    if dtype == torch.float64:   # the same algorithm on the same draws: equal to rounding
        torch.testing.assert_close(policy.logits.detach(), logits.detach(), rtol=0, atol=1e-12)


def test_records_gradient_sums_to_exactly_zero_for_mirrored_records():
    # per-run mini-batches of (a,b) and (b,a) in mixed order: Σ_y ∂L/∂log π_y is 0 in exact
    # arithmetic, and with separate chosen and rejected sums it is 0 in float32 too
    pairs = ipo_bandit.dataset("D3_printed")
    sampler = _Sampler(pairs, 6, 9, torch.arange(1, 7))
    logp = torch.log_softmax(torch.randn(6, 1, 3, generator=torch.Generator().manual_seed(0)), -1)
    grads = LossGrads(make("ipo", beta=0.1), pairs, 6, like=logp)
    shared = ipo_bandit.Pairs.from_records(pairs.problem, [(0, 0, 1), (0, 1, 0), (0, 0, 1), (0, 0, 1), (0, 1, 0)],
                                           weights=[0.3, 0.1, 0.2, 0.25, 0.15])       # one record list for all runs
    for records in [shared] + [sampler.draw() for _ in range(20)]:
        g = grads.grad(logp, records)
        assert torch.equal(g[..., 2], torch.zeros_like(g[..., 2]))
        assert torch.equal(g.sum(-1), torch.zeros_like(g.sum(-1)))
