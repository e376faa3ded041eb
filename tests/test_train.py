"""Batched training: fast gradient vs autograd for every loss, optimiser trajectories against
hand-iterated NumPy and torch.optim.Adam, one-run vs batched equivalence, convergence to π*_β,
mini-batches, stateful losses, history, determinism and validation."""
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import E1_PISTAR, E1_REF, E1_REWARD, e1_problem

import toybench as tb
from toybench import loss_grads
from toybench.losses.base import LENGTH_INPUTS, Loss
from toybench.objective import record_inputs
from toybench.policies import Policy, Tabular
from toybench.train import train


# ------------------------------------------------------------------------ test-only helpers
class AutogradTabular(Policy):
    """Tabular's parametrisation in a class without ``vjp``, so ``train`` uses autograd."""

    def __init__(self, prob, runs, init, dtype=torch.float64):
        self.prob, self.runs, self.dtype, self.device = prob, runs, dtype, torch.device("cpu")
        self.logits = torch.as_tensor(init, dtype=dtype).expand(runs, prob.P, prob.Y).clone().requires_grad_(True)

    def logp(self):
        return torch.log_softmax(self.logits, dim=-1)

    def parameters(self):
        return [self.logits]


class SharedLogits(Policy):
    """One ``[P, Y]`` logit table shared by all runs (no run axis on the parameter)."""

    def __init__(self, prob, runs):
        self.prob, self.runs, self.dtype, self.device = prob, runs, torch.float64, torch.device("cpu")
        self.logits = prob.ref_logp.clone().requires_grad_(True)

    def logp(self):
        return torch.log_softmax(self.logits, dim=-1).expand(self.runs, -1, -1)

    def parameters(self):
        return [self.logits]


class ScaledLogits:
    """A policy that is no ``Policy`` subclass: log π = log_softmax(c·s), with its own VJP
    c·(g − π·Σ_y g) (or, with ``normalised=False``, c·s unnormalised; ``frozen``: no requires_grad)."""

    def __init__(self, prob, runs, scale=2.0, init=None, normalised=True, frozen=False):
        self.prob, self.runs, self.scale, self.normalised = prob, runs, scale, normalised
        start = prob.ref_logp / scale if init is None else torch.as_tensor(init, dtype=torch.float64)
        self.logits = start.expand(max(runs, 1), prob.P, prob.Y).clone().requires_grad_(not frozen)

    def logp(self):
        scaled = self.scale * self.logits
        return torch.log_softmax(scaled, dim=-1) if self.normalised else scaled

    def parameters(self):
        return [self.logits]

    def vjp(self, grad_logp):
        prob = self.logp().exp()
        return [self.scale * (grad_logp - prob * grad_logp.sum(-1, keepdim=True))]


class AutogradScaledLogits(ScaledLogits):
    """The same policy without its VJP (``train`` falls back to autograd)."""

    vjp = None


class LogLinear(Policy):
    """log π(y|x) = log_softmax_y(θ_b·φ(x, y) + log π_ref(y|x)), fixed features φ ``[P, Y, D]``,
    θ ``[B, D]`` shared by every prompt and response (starts at π_ref with θ = 0)."""

    def __init__(self, prob, runs, features, dtype=torch.float64):
        self.prob, self.runs, self.dtype, self.device = prob, runs, dtype, torch.device("cpu")
        self.features, self.ref = features.to(dtype), prob.ref_logp.to(dtype)
        self.theta = torch.zeros(runs, features.shape[-1], dtype=dtype, requires_grad=True)

    def logp(self):
        return torch.log_softmax(torch.einsum("pyd,bd->bpy", self.features, self.theta) + self.ref, dim=-1)

    def parameters(self):
        return [self.theta]


@dataclass(frozen=True)
class ShiftedSquare(Loss):
    """Test-only stateful loss (not registered): L = (g_w − m)², g = ℓ − ℓ_ref, with per-run state
    m ← ½·m + ½·Σ_k ω_k·g_l,k (normalised weights, detached), updated before the loss."""

    stateful = True

    def init_state(self, runs, like):
        return {"m": torch.zeros(runs, dtype=like.dtype, device=like.device)}

    def population_state(self, inputs, weight):
        rejected = (inputs["rejected_logp"] - inputs["ref_rejected_logp"]).detach()
        weight = weight.to(rejected.dtype).expand_as(rejected)
        return {"m": (weight * rejected).sum(-1) / weight.sum(-1)}

    def update_state(self, state, inputs, weight):
        return {"m": 0.5 * state["m"] + 0.5 * self.population_state(inputs, weight)["m"]}

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp, *, state):
        return (chosen_logp - ref_chosen_logp - state["m"][:, None]) ** 2


def two_response_problem():
    """P = 1, Y = 2, π_ref = (0.6, 0.4), r = (1, 0): records (0 ≻ 1) with weight σ(1), (1 ≻ 0) with σ(−1)."""
    return tb.Problem(tb.FlatSpace(2), torch.tensor([[0.6, 0.4]], dtype=torch.float64).log(),
                      reward=torch.tensor([[1.0, 0.0]]),
                      pair_dist="uniform")


def sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def reverse_kl_target(ref, reward, beta):
    """π*_β ∝ π_ref·e^{r/β} in NumPy, per prompt."""
    return softmax(np.log(ref) + reward / beta)


def with_needed_fields(loss, pairs, rng):
    """``pairs`` plus a positive random field for every named per-record input the loss needs."""
    extra = {name: torch.tensor(rng.uniform(0.2, 1.0, size=(1, pairs.size)))
             for name in loss.needs if name not in LENGTH_INPUTS}
    return pairs.with_fields(**extra) if extra else pairs


# ------------------------------------------------------------------------ fast gradient == autograd
FLAT_LOSSES = [n for n in tb.losses.names() if not getattr(tb.losses.REGISTRY[n], "needs_table", False)]
"""Every loss that works on a FlatSpace (token-level losses need a SequenceSpace: tests/test_losses_token.py)."""


@pytest.mark.parametrize("name", FLAT_LOSSES)
def test_fast_gradient_matches_autograd_for_every_loss(name):
    space = tb.FlatSpace(5, lengths=[1.0, 2.0, 3.0, 4.0, 6.0])
    prob = tb.Problem.random(space, prompts=2, seed=3)
    rng = np.random.default_rng(7)
    loss = tb.losses.make(name)
    pairs = with_needed_fields(loss, tb.population(prob), rng)
    init = torch.tensor(rng.normal(size=(3, 2, 5)))
    policy = Tabular(prob, runs=3, init=init, dtype=torch.float64)
    train(policy, loss, pairs, steps=1, optimizer="sgd", lr=1.0)      # s ← s − ∇L on the fast path
    fast_grad = init - policy.logits.detach()

    logits = init.clone().requires_grad_(True)
    logp = torch.log_softmax(logits, dim=-1)
    inputs = record_inputs(loss, logp, pairs)
    state = {}
    if loss.stateful:
        state = {"state": loss.update_state(loss.init_state(3, logp), inputs, pairs.weight)}
    objective = (pairs.weight * loss(**inputs, **state)).sum()
    (expected,) = torch.autograd.grad(objective, logits)
    assert expected.abs().max() > 1e-4  # a moving point, not a stationary one
    # rtol: float64 rounding of two gradient formulas; atol: recovering ∇L as s_old − s_new
    # loses ~1e-16·|s| ≤ 1e-15 absolute for logits of size ≤ 5
    np.testing.assert_allclose(fast_grad.numpy(), expected.numpy(), rtol=1e-10, atol=1e-13)


@dataclass(frozen=True)
class UndefinedOnTheDiagonal(Loss):
    """Test-only loss (not registered): L = −log σ(Δ)·(ℓ_w − ℓ_l)/(ℓ_w − ℓ_l), DPO's value on
    every record but 0/0 = NaN on a grid cell with chosen = rejected, where no record is."""

    def per_record(self, chosen_logp, rejected_logp, ref_chosen_logp, ref_rejected_logp):
        gap = chosen_logp - rejected_logp
        margin = gap - (ref_chosen_logp - ref_rejected_logp)
        return torch.nn.functional.softplus(-margin) * gap / gap


@pytest.mark.parametrize("name, fields, responses, n, grid", [
    ("dpo", "none", 5, 60, True),               # plain margin on the cell grid
    ("simpo", "none", 5, 60, True),             # any stateless loss on the grid, lengths as inputs
    ("madpo", "consistent", 5, 60, True),       # a named field laid on the grid
    ("tan_reward_scaled", "consistent", 5, 60, True),  # a loss that refuses a zero field on any record
    ("undefined_on_diagonal", "none", 5, 60, True),    # NaN on cells without records is masked
    ("madpo", "per_record", 5, 60, False),      # records of one cell disagree on the field: record list
    ("simpo", "none", 12, 20, False),           # 288 cells for 20 records: record list
    ("kto", "none", 5, 60, False),              # batch statistics over records: record list
])
def test_gradient_paths_on_per_run_samples_match_autograd(name, fields, responses, n, grid):
    """Per-run data sets with repeated records: the path train takes gives autograd's gradient."""
    lengths = [float(1 + k % 4) for k in range(responses)]
    prob = tb.Problem.random(tb.FlatSpace(responses, lengths=lengths), prompts=2, seed=6)
    pairs = tb.sample_pairs(prob, n=n, seed=[1, 2, 3])
    rng = np.random.default_rng(8)
    if fields == "consistent":
        pairs = tb.losses.with_score_gap(pairs)
    elif fields == "per_record":
        pairs = pairs.with_fields(score_gap=torch.tensor(rng.uniform(0.2, 1.0, size=(3, n))))
    loss = {"tan_reward_scaled": lambda: tb.losses.make("tan_principled", zeta="reward_scaled"),
            "undefined_on_diagonal": UndefinedOnTheDiagonal}.get(name, lambda: tb.losses.make(name))()
    assert (loss_grads._RecordGrid.build(loss, pairs, torch.zeros(1, dtype=torch.float64)) is not None) == grid
    init = torch.tensor(rng.normal(size=(3, 2, responses)))
    policy = Tabular(prob, runs=3, init=init, dtype=torch.float64)
    train(policy, loss, pairs, steps=1, optimizer="sgd", lr=1.0)
    logits = init.clone().requires_grad_(True)
    inputs = record_inputs(loss, torch.log_softmax(logits, dim=-1), pairs)
    state = {"state": loss.update_state(loss.init_state(3, logits), inputs, pairs.weight)} if loss.stateful else {}
    (expected,) = torch.autograd.grad((pairs.weight * loss(**inputs, **state)).sum(), logits)
    # tolerances as in test_fast_gradient_matches_autograd_for_every_loss
    np.testing.assert_allclose((init - policy.logits.detach()).numpy(), expected.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", FLAT_LOSSES)
def test_every_loss_trains_full_batch_and_minibatch(name):
    prob = tb.Problem.random(tb.FlatSpace(5, lengths=[1.0, 2.0, 3.0, 4.0, 6.0]), prompts=2, seed=3)
    loss = tb.losses.make(name)
    pairs = with_needed_fields(loss, tb.population(prob), np.random.default_rng(0))
    for batch_size in (None, 4):
        policy = Tabular(prob, runs=2)
        history = train(policy, loss, pairs, steps=3, batch_size=batch_size)
        assert torch.isfinite(history.records[0]["loss"]).all() and torch.isfinite(policy.logits).all()
        assert not torch.equal(policy.logp(), Tabular(prob, runs=2).logp())


@pytest.mark.parametrize("name, batch_size", [("dpo", None), ("ipo", 7), ("kto", None), ("simpo", 5),
                                               ("alpha_dpo", None)])
def test_autograd_policy_path_matches_tabular_fast_path(name, batch_size):
    prob = tb.Problem.random(tb.FlatSpace(4, lengths=[1.0, 2.0, 2.0, 5.0]), prompts=2, seed=4)
    init = torch.tensor(np.random.default_rng(2).normal(size=(2, 2, 4)))
    loss, pairs = tb.losses.make(name), tb.population(prob)
    fast = Tabular(prob, runs=2, init=init, dtype=torch.float64)
    slow = AutogradTabular(prob, 2, init)
    for policy in (fast, slow):
        train(policy, loss, pairs, steps=15, optimizer="sgd", lr=0.5, batch_size=batch_size, seed=5)
    # float64 rounding of two gradient formulas over 15 SGD steps (SGD, not Adam: Adam's
    # g/√v turns rounding in a near-zero gradient into an O(lr) difference)
    np.testing.assert_allclose(fast.logits.detach().numpy(), slow.logits.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["dpo", "simpo", "ipo", "kto", "sppo", "madpo"])
def test_log_linear_policy_gradient_is_autograd_of_the_population_loss(name):
    """A policy whose parameters are shared across responses trains through the same loss side:
    one SGD step with lr = 1 moves θ by −∇_θ L, L the population objective through autograd."""
    prob = tb.Problem.random(tb.FlatSpace(5, lengths=[1.0, 2.0, 3.0, 4.0, 6.0]), prompts=2, seed=3)
    rng = np.random.default_rng(4)
    loss = tb.losses.make(name)
    pairs = with_needed_fields(loss, tb.population(prob), rng)
    features = torch.tensor(rng.normal(size=(2, 5, 3)))
    policy = LogLinear(prob, 2, features)
    start = torch.tensor(rng.normal(size=(2, 3)))
    with torch.no_grad():
        policy.theta.copy_(start)
    train(policy, loss, pairs, steps=1, optimizer="sgd", lr=1.0)

    theta = start.clone().requires_grad_(True)
    logp = torch.log_softmax(torch.einsum("pyd,bd->bpy", features, theta) + prob.ref_logp, dim=-1)
    inputs = record_inputs(loss, logp, pairs)
    state = {"state": loss.update_state(loss.init_state(2, logp), inputs, pairs.weight)} if loss.stateful else {}
    (expected,) = torch.autograd.grad((pairs.weight * loss(**inputs, **state)).sum(), theta)
    assert expected.abs().max() > 1e-4
    # float64 rounding of two gradient formulas; atol: θ_old − θ_new loses ~1e-16·|θ|
    np.testing.assert_allclose((start - policy.theta.detach()).numpy(), expected.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("batch_size", [None, 3])
def test_a_policy_with_its_own_vjp_matches_autograd_through_logp(batch_size):
    """Duck typing: an object that is no ``Policy`` subclass trains; its hand VJP and autograd
    through its ``logp()`` give the same trajectory."""
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=2)
    init = torch.tensor(np.random.default_rng(5).normal(size=(3, 2, 4)))
    own, auto = ScaledLogits(prob, 3, init=init), AutogradScaledLogits(prob, 3, init=init)
    for policy in (own, auto):
        train(policy, tb.losses.make("ipo", beta=0.5), tb.population(prob), steps=10, optimizer="sgd", lr=0.3,
              batch_size=batch_size, seed=1)
    assert not torch.allclose(own.logits, init)
    # float64 rounding of two gradient formulas over 10 SGD steps
    np.testing.assert_allclose(own.logits.detach().numpy(), auto.logits.detach().numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------ optimiser trajectories
def test_sgd_on_two_responses_matches_hand_iterated_numpy():
    prob = two_response_problem()
    beta, lr, steps = 0.5, 0.3, 6
    log_ref = np.log([0.6, 0.4])
    w_win, w_lose = sigmoid(1.0), sigmoid(-1.0)       # weights of records (0 ≻ 1) and (1 ≻ 0)
    logits = log_ref.copy()
    for _ in range(steps):
        # Δ = g_0 − g_1 = (s_0 − s_1) − log(0.6/0.4); L = w·sp(−βΔ) + w'·sp(βΔ)
        delta = (logits[0] - logits[1]) - (log_ref[0] - log_ref[1])
        dloss_ddelta = beta * (-w_win * sigmoid(-beta * delta) + w_lose * sigmoid(beta * delta))
        logits = logits - lr * np.array([dloss_ddelta, -dloss_ddelta])
    policy = Tabular(prob, dtype=torch.float64)
    train(policy, tb.losses.make("dpo", beta=beta), tb.population(prob), steps=steps, optimizer="sgd", lr=lr)
    got = policy.logits.detach().numpy()[0, 0]
    np.testing.assert_allclose(got, logits, rtol=1e-13, atol=1e-14)  # float64 rounding over 6 steps


def test_adam_matches_torch_optim_adam_loop():
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=8)
    pairs, loss, lr, steps = tb.population(prob), tb.losses.make("dpo", beta=0.5), 0.05, 30
    logits = prob.ref_logp.clone().requires_grad_(True)
    adam = torch.optim.Adam([logits], lr=lr)
    chosen, rejected = pairs.prompt[0] * 4 + pairs.chosen[0], pairs.prompt[0] * 4 + pairs.rejected[0]
    ref = prob.ref_logp.reshape(-1)
    for _ in range(steps):
        logp = (logits - logits.logsumexp(-1, keepdim=True)).reshape(-1)
        delta = (logp[chosen] - ref[chosen]) - (logp[rejected] - ref[rejected])
        value = (pairs.weight[0] * torch.nn.functional.softplus(-0.5 * delta)).sum()
        adam.zero_grad()
        value.backward()
        adam.step()
    policy = Tabular(prob, dtype=torch.float64)
    train(policy, loss, pairs, steps=steps, optimizer="adam", lr=lr)
    # float64 rounding of two orderings of the same update, divided by √v + ε
    np.testing.assert_allclose(policy.logits.detach().numpy()[0], logits.detach().numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------ batched == one at a time
@pytest.mark.parametrize("data", ["per_run_samples", "shared_population", "minibatch"])
def test_batched_runs_equal_the_same_runs_trained_alone(monkeypatch, data):
    monkeypatch.setattr(loss_grads, "RUN_BLOCK", 3)   # blocks of 3 and 1 runs
    prob = tb.Problem.random(tb.FlatSpace(5), prompts=2, seed=9)
    betas, lrs, seeds = [0.1, 0.5, 1.0, 2.0], [0.02, 0.05, 0.1, 0.05], [10, 11, 12, 13]
    if data == "per_run_samples":
        batched_data, alone_data = tb.sample_pairs(prob, n=40, seed=seeds), [tb.sample_pairs(prob, n=40, seed=s)
                                                                            for s in seeds]
    else:
        batched_data, alone_data = tb.population(prob), [tb.population(prob)] * 4
    batch_size = 16 if data == "minibatch" else None
    runs = 4
    batched = Tabular(prob, runs=runs)
    history = train(batched, tb.losses.make("dpo", beta=torch.tensor(betas)), batched_data, steps=60,
                    lr=torch.tensor(lrs), log_every=20, batch_size=batch_size, seed=seeds)
    for b in range(runs):
        alone = Tabular(prob)
        alone_history = train(alone, tb.losses.make("dpo", beta=betas[b]), alone_data[b], steps=60, lr=lrs[b],
                              log_every=20, batch_size=batch_size, seed=seeds[b])
        # float32 rounding: the same elementwise operations on a different block shape
        np.testing.assert_allclose(batched.logp().detach().numpy()[b], alone.logp().detach().numpy()[0],
                                   rtol=0, atol=1e-5)
        np.testing.assert_allclose(history.final["loss"][b].item(), alone_history.final["loss"][0].item(), rtol=1e-5)
    assert not np.allclose(batched.logp().detach().numpy()[0], prob.ref_logp.numpy(), atol=1e-2)   # it trained


# ------------------------------------------------------------------------ convergence
def test_adam_full_batch_dpo_reaches_reverse_kl_target_on_e1():
    prob = e1_problem("uniform")
    policy = Tabular(prob)
    train(policy, tb.losses.make("dpo", beta=1.0), tb.population(prob), steps=600, lr=0.1)
    target = reverse_kl_target(E1_REF, E1_REWARD, 1.0)
    np.testing.assert_allclose(target, E1_PISTAR, atol=1e-6)  # E1's π*_β printed to 6 digits
    tv = 0.5 * np.abs(policy.logp().detach().double().exp().numpy()[0, 0] - target).sum()
    assert tv < 1e-3


def test_adam_per_run_beta_reaches_each_runs_target():
    prob = tb.Problem.random(tb.FlatSpace(6), prompts=3, seed=11, pair_dist="ref")
    betas = [0.7, 2.0]
    policy = Tabular(prob, runs=2)
    train(policy, tb.losses.make("dpo", beta=torch.tensor(betas)), tb.population(prob), steps=1500, lr=0.1)
    ref, reward = prob.ref_logp.exp().numpy(), prob.reward.numpy()
    got = policy.logp().detach().double().exp().numpy()
    for b, beta in enumerate(betas):
        tv = 0.5 * np.abs(got[b] - reverse_kl_target(ref, reward, beta)).sum(-1)
        assert tv.max() < 1e-3


def test_minibatch_adam_converges_near_the_target():
    prob = e1_problem("uniform")
    policy = Tabular(prob, runs=2)
    train(policy, tb.losses.make("dpo", beta=1.0), tb.population(prob), steps=1500, lr=0.01, batch_size=256, seed=1)
    target = reverse_kl_target(E1_REF, E1_REWARD, 1.0)
    tv = 0.5 * np.abs(policy.logp().detach().double().exp().numpy()[:, 0] - target).sum(-1)
    start = 0.5 * np.abs(E1_REF - target).sum()
    # constant-lr Adam on 256-record batches keeps a stationary noise of TV ~0.01 (measured)
    assert start > 0.4 and (tv < 0.05).all()


# ------------------------------------------------------------------------ mini-batch sampling law
def test_minibatch_draws_follow_the_record_weights():
    prob = two_response_problem()
    pairs = tb.Pairs.from_records(prob, [(0, 0, 1), (0, 1, 0)], weights=[0.8, 0.2])
    policy = Tabular(prob, dtype=torch.float64)
    steps = 400
    history = train(policy, tb.losses.make("dpo", beta=1.0), pairs, steps=steps, optimizer="sgd", lr=0.01,
                    batch_size=1, seed=3, log_every=1)
    mass_on_first = np.array([record["expected_reward"].item() for record in history.records])  # r = (1, 0)
    up = (np.diff(mass_on_first) > 0).sum()
    # one draw per step: the mass on response 0 rises iff record (0 ≻ 1) was drawn, Binomial(400, 0.8):
    # mean 320, sd 8; 5 sd either side
    assert abs(up - 0.8 * steps) < 40


def test_minibatch_zero_weight_records_and_per_run_data():
    prob = two_response_problem()
    zero = tb.Pairs.from_records(prob, [(0, 0, 1), (0, 1, 0)], weights=[1.0, 0.0])
    per_run = tb.Pairs(prompt=torch.zeros(2, 2, dtype=torch.int64), chosen=torch.tensor([[0, 0], [1, 1]]),
                       rejected=torch.tensor([[1, 1], [0, 0]]), weight=torch.full((2, 2), 0.5, dtype=torch.float64),
                       problem=prob)
    for pairs, direction in ((zero, [1]), (per_run, [1, -1])):
        policy = Tabular(prob, runs=len(direction), dtype=torch.float64)
        history = train(policy, tb.losses.make("dpo", beta=1.0), pairs, steps=30, optimizer="sgd", lr=0.1,
                        batch_size=1, seed=0, log_every=1)
        mass = np.array([record["expected_reward"].numpy() for record in history.records])  # [steps + 1, runs]
        assert (np.sign(np.diff(mass, axis=0)) == np.array(direction)).all()


# ------------------------------------------------------------------------ stateful losses
def test_stateful_loss_updates_state_before_the_loss_on_both_paths():
    prob = two_response_problem()
    pairs = tb.population(prob)
    loss, lr, steps = ShiftedSquare(), 0.3, 5
    init = np.array([0.3, -0.2])
    log_ref = np.log([0.6, 0.4])
    records = [(0, 1, sigmoid(1.0)), (1, 0, sigmoid(-1.0))]   # (chosen, rejected, weight)
    logits, m = init.copy(), 0.0
    for _ in range(steps):
        g = logits - np.log(np.exp(logits).sum()) - log_ref
        m = 0.5 * m + 0.5 * sum(w * g[rej] for _, rej, w in records)
        dlogp = np.zeros(2)
        for cho, _, w in records:
            dlogp[cho] += 2 * w * (g[cho] - m)
        logits = logits - lr * (dlogp - softmax(logits) * dlogp.sum())
    g0 = init - np.log(np.exp(init).sum()) - log_ref
    m_pop = sum(w * g0[rej] for _, rej, w in records)
    loss_at_start = sum(w * (g0[cho] - m_pop) ** 2 for cho, _, w in records)
    for policy in (Tabular(prob, init=torch.tensor(init[None]), dtype=torch.float64),
                   AutogradTabular(prob, 1, torch.tensor(init[None]))):
        history = train(policy, loss, pairs, steps=steps, optimizer="sgd", lr=lr)
        np.testing.assert_allclose(policy.logits.detach().numpy()[0, 0], logits, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(history.records[0]["loss"].item(), loss_at_start, rtol=1e-12)


# ------------------------------------------------------------------------ history
def test_history_steps_values_and_frame():
    prob = e1_problem("uniform")
    policy = Tabular(prob, runs=3)
    history = train(policy, tb.losses.make("dpo", beta=1.0), tb.population(prob), steps=10, lr=0.1, log_every=4)
    assert history.steps == [0, 4, 8, 10]
    start = history.records[0]
    target = reverse_kl_target(E1_REF, E1_REWARD, 1.0)
    pref = sigmoid(E1_REWARD[:, None] - E1_REWARD[None, :])
    expected = {"loss": np.log(2.0),                                   # Δ = 0 on every record at π_ref
                "kl_to_target": (E1_REF * np.log(E1_REF / target)).sum(),
                "kl_from_target": (target * np.log(target / E1_REF)).sum(),
                "tv_to_target": 0.5 * np.abs(E1_REF - target).sum(),
                "kl_to_ref": 0.0,
                "entropy": -(E1_REF * np.log(E1_REF)).sum(),
                "expected_reward": E1_REF @ E1_REWARD,
                "win_rate": E1_REF @ pref @ E1_REF}
    assert set(expected) | {"mass_on_best", "step"} == set(start)
    for key, value in expected.items():
        assert start[key].shape == (3,) and start[key].dtype == torch.float64
        # float32 log π_ref cast to float64: errors ~1e-7
        np.testing.assert_allclose(start[key].numpy(), value, rtol=1e-6, atol=1e-6, err_msg=key)
    assert history.final.keys() == set(start) - {"step"}
    assert all(torch.equal(history.final[key], history.records[-1][key]) for key in history.final)
    frame = history.to_frame()
    assert frame.shape == (4 * 3, 2 + len(history.final))
    assert list(frame.columns[:5]) == ["step", "run", "loss", "kl_to_target", "kl_from_target"]
    assert frame["step"].tolist() == [s for s in (0, 4, 8, 10) for _ in range(3)]
    assert frame["run"].tolist() == [0, 1, 2] * 4
    assert frame["loss"].iloc[-1] == history.final["loss"][2].item()
    assert (np.diff(frame[frame["run"] == 0]["kl_to_target"]) < 0).all()   # Adam from π_ref towards π*


@pytest.mark.parametrize("steps, expected", [(250, list(range(0, 251, 2))), (7, list(range(8))),
                                             (150, list(range(151)))])
def test_default_log_every(steps, expected):
    prob = two_response_problem()
    history = train(Tabular(prob), tb.losses.make("dpo"), tb.population(prob), steps=steps)
    assert history.steps == expected


def test_target_columns_nan_without_target_and_explicit_target():
    prob = e1_problem("uniform")
    pairs, hinge = tb.population(prob), tb.losses.make("hinge", beta=1.0)
    history = train(Tabular(prob), hinge, pairs, steps=2)
    assert torch.isnan(history.final["kl_to_target"]).all() and torch.isnan(history.final["kl_from_target"]).all()
    target = reverse_kl_target(E1_REF, E1_REWARD, 1.0)
    history = train(Tabular(prob), hinge, pairs, steps=2, target=torch.tensor(np.log(target)[None]))
    np.testing.assert_allclose(history.records[0]["kl_to_target"].item(), (E1_REF * np.log(E1_REF / target)).sum(),
                               rtol=1e-6)  # float32 log π_ref


def test_float64_policy_stays_float64_and_progress_bar(capsys):
    prob = two_response_problem()
    policy = Tabular(prob, runs=2, dtype=torch.float64)
    train(policy, tb.losses.make("dpo"), tb.population(prob), steps=3, progress=True)
    assert policy.logits.dtype == torch.float64 and policy.logp().dtype == torch.float64
    assert "train" in capsys.readouterr().err


# ------------------------------------------------------------------------ determinism
def test_same_seed_same_numbers_different_seed_different_numbers():
    prob = e1_problem("ref")
    finals = []
    for seed in (3, 3, 4):
        policy = Tabular(prob, runs=2)
        train(policy, tb.losses.make("ipo", beta=0.5), tb.population(prob), steps=20, lr=0.05, batch_size=8,
              seed=seed)
        finals.append(policy.logits.detach().clone())
    assert torch.equal(finals[0], finals[1]) and not torch.equal(finals[0], finals[2])
    assert not torch.equal(finals[0][0], finals[0][1])   # identical runs, independent draws


# ------------------------------------------------------------------------ validation
def _setup(runs=2):
    prob = e1_problem("uniform")
    return dict(policy=Tabular(prob, runs=runs), loss=tb.losses.make("dpo"), pairs=tb.population(prob), steps=3)


@pytest.mark.parametrize("changes, message", [
    (dict(policy=torch.zeros(2, 1, 4)), r"policy must have logp\(\) -> \[B, P, Y\] and parameters\(\)"),
    (dict(policy=ScaledLogits(e1_problem(), 0)), "policy.runs must be an integer >= 1"),
    (dict(policy=ScaledLogits(e1_problem(), 2, init=torch.zeros(1, 4), normalised=False)), "must be normalised log-probs"),
    (dict(policy=ScaledLogits(e1_problem(), 2, frozen=True)), "leaf tensors with requires_grad"),
    (dict(loss=lambda *a: 0), "loss must be a toybench loss"),
    (dict(pairs=(0, 1)), "pairs must be Pairs"),
    (dict(pairs=tb.sample_pairs(e1_problem(), n=5, seed=[0, 1, 2])), "pairs have 3 runs of data"),
    (dict(loss=tb.losses.make("dpo", beta=torch.tensor([0.1, 0.2, 0.3]))), r"\[3\] hyperparameters"),
    (dict(pairs=tb.population(two_response_problem())), r"policy.logp\(\) must be a float tensor \[B, P, Y\] = "
                                                         r"\[2, 1, 2\] for these pairs, got \[2, 1, 4\]"),
    (dict(steps=0), "steps must be >= 1"),
    (dict(steps=2.0), "steps must be an int"),
    (dict(steps=True), "steps must be an int"),
    (dict(seed="0"), "seed must be an int"),
    (dict(seed=[1, 2, 3]), "seed must be an int or 2 ints"),
    (dict(optimizer="rmsprop"), r"optimizer='rmsprop' is not allowed; use one of \['adam', 'sgd'\]"),
    (dict(lr=0.0), "lr > 0"),
    (dict(lr=-1.0), "lr > 0"),
    (dict(lr=float("nan")), "lr must be finite"),
    (dict(lr=torch.tensor([0.1, 0.2, 0.3])), r"lr has 3 values but the policy has 2 runs"),
    (dict(batch_size=0), "batch_size must be None or an integer >= 1"),
    (dict(batch_size=2.5), "batch_size must be None or an integer >= 1"),
    (dict(log_every=0), "log_every must be None or an integer >= 1"),
    (dict(target=torch.zeros(1, 3)), r"target must have shape \[1, 4\] or \[2, 1, 4\]"),
    (dict(target="pi_star"), "target must be log-probs"),
    (dict(progress="yes"), "progress must be True or False"),
])
def test_validation(changes, message):
    arguments = {**_setup(), **changes}
    with pytest.raises(ValueError, match=message):
        train(**arguments)


def test_per_run_lr_needs_a_run_axis_on_every_parameter():
    prob = e1_problem("uniform")
    with pytest.raises(ValueError, match=r"a \[B\] lr needs every policy parameter"):
        train(SharedLogits(prob, 2), tb.losses.make("dpo"), tb.population(prob), steps=1, lr=torch.tensor([0.1, 0.2]))


def test_missing_pairs_field_is_reported():
    prob = e1_problem("uniform")
    with pytest.raises(ValueError, match="length-aware"):
        train(Tabular(prob), tb.losses.make("simpo"), tb.population(prob), steps=1)
