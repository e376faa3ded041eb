"""Property tests (hypothesis) for every registered loss, on random small problems:

- the population objective depends on the policy's logits only through log-softmax, so a
  per-prompt shift of the logits changes neither its value nor its gradient (which sums to 0 over
  each prompt's responses);
- relabelling the responses (problem, pair law, lengths, per-record fields and policy permuted
  together) gives the same objective and the permuted gradient;
- B runs with ``[B]`` hyperparameters in one call equal B separate calls, for per-record values and
  ``input_grads`` (and batch statistics for stateful losses).

Tolerances: float64 rounding of sums over ≤ 2·P·Y² records of O(1) terms (value rtol 1e-10); a
relabelling or batching changes only the order of summation.
"""
import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import toybench as tb
from toybench.losses.base import LENGTH_INPUTS
from toybench.losses.fdiv import with_rewards
from toybench.objective import record_inputs

SETTINGS = settings(max_examples=5, deadline=None, derandomize=True)
VARIANTS = [(name, {}) for name in tb.losses.names()] + [
    ("fpo", dict(mode="exact")), ("exo", dict(mode="list")), ("sppo", dict(mode="single")),
    ("tan_principled", dict(zeta="reward_scaled")), ("bco", dict(delta="free")),
    ("bpo", dict(h="ba", lam=2.0)), ("fdpo", dict(divergence="forward_kl")),
    ("alpha_po", dict(alpha=0.5, length_normalized=True)),
]
IDS = [f"{name}{kwargs or ''}" for name, kwargs in VARIANTS]
TOKEN_LOSSES = {name for name in tb.losses.names()
                if any(need.endswith("_token_logratio") for need in tb.losses.make(name).needs)}
# token-level losses read per-token views of a SequenceSpace, whose responses are token strings:
# relabelling responses is not a symmetry of theirs (relabelling tokens would be)
RELABELLED = [(name, kwargs) for name, kwargs in VARIANTS if name not in TOKEN_LOSSES]
FIELD_BUILDERS = [(("score_gap",), tb.losses.with_score_gap),
                  (("chosen_win_prob", "rejected_win_prob", "pair_win_prob"), tb.losses.with_win_probs),
                  (("chosen_reward", "rejected_reward"), with_rewards)]


def random_problem(seed: int, prompts: int, responses: int, permutation=None):
    """A BT problem with unequal lengths and a random ``[P, Y, Y]`` pair-law table; ``permutation``
    relabels every response-indexed table (response k of the result is response perm[k])."""
    rng = np.random.default_rng(seed)
    ref = np.log(rng.dirichlet(np.ones(responses), size=prompts))
    reward = rng.normal(0, 1.5, size=(prompts, responses))
    law = rng.uniform(0.1, 1.0, size=(prompts, responses, responses))
    lengths = rng.integers(1, 5, size=responses).astype(float)
    weights = rng.dirichlet(np.ones(prompts))
    if permutation is not None:
        ref, reward, lengths = ref[:, permutation], reward[:, permutation], lengths[permutation]
        law = law[:, permutation][:, :, permutation]
    return tb.Problem(tb.FlatSpace(responses, lengths=lengths.tolist()), torch.tensor(ref),
                      reward=torch.tensor(reward), prompt_weights=torch.tensor(weights), pair_dist=torch.tensor(law))


def problem_for(loss, seed: int, prompts: int, responses: int):
    """``random_problem``, or for a token-level loss a random SequenceSpace(2, 2) problem (Y = 6)."""
    if loss.name in TOKEN_LOSSES:
        return tb.Problem.random(tb.SequenceSpace(2, 2), prompts=prompts, seed=seed, pair_dist="uniform")
    return random_problem(seed, prompts, responses)


def with_fields(loss, pairs):
    for names, build in FIELD_BUILDERS:
        if set(names) & set(loss.needs):
            pairs = build(pairs)
    return pairs


def population_objective(loss, logits, pairs):
    """Σ weight·loss at π = softmax(logits) (population statistics for stateful losses), ``[B]``."""
    inputs = record_inputs(loss, torch.log_softmax(logits, -1), pairs)
    state = {"state": loss.population_state(inputs, pairs.weight)} if loss.stateful else {}
    return (pairs.weight * loss(**inputs, **state)).sum(-1)


def value_and_grad(loss, logits, pairs):
    logits = logits.clone().requires_grad_(True)
    value = population_objective(loss, logits, pairs)
    (grad,) = torch.autograd.grad(value.sum(), logits)
    return value.detach(), grad


@pytest.mark.parametrize("name, kwargs", VARIANTS, ids=IDS)
@SETTINGS
@given(seed=st.integers(0, 2 ** 16), prompts=st.integers(1, 3), responses=st.integers(2, 5),
       shift=st.floats(-30, 30))
def test_objective_ignores_a_per_prompt_logit_shift(name, kwargs, seed, prompts, responses, shift):
    loss = tb.losses.make(name, **kwargs)
    prob = problem_for(loss, seed, prompts, responses)
    pairs = with_fields(loss, tb.population(prob))
    logits = torch.tensor(np.random.default_rng(seed + 1).normal(0, 1.5, size=(1, prompts, prob.Y)))
    offsets = shift * torch.linspace(-1, 1, prompts, dtype=torch.float64)[None, :, None]
    value, grad = value_and_grad(loss, logits, pairs)
    shifted_value, shifted_grad = value_and_grad(loss, logits + offsets, pairs)
    # log-softmax of shifted logits differs by rounding of |shift| ≤ 30: ~30·eps per log-prob
    np.testing.assert_allclose(shifted_value.numpy(), value.numpy(), rtol=1e-10, atol=1e-12)
    scale = float(grad.abs().max()) + 1e-300
    np.testing.assert_allclose(shifted_grad.numpy(), grad.numpy(), rtol=1e-8, atol=1e-10 * scale)
    assert float(grad.sum(-1).abs().max()) <= 1e-12 * max(1.0, scale) * prob.Y


@pytest.mark.parametrize("name, kwargs", RELABELLED, ids=[f"{name}{kwargs or ''}" for name, kwargs in RELABELLED])
@SETTINGS
@given(seed=st.integers(0, 2 ** 16), prompts=st.integers(1, 3), responses=st.integers(2, 5),
       order=st.randoms(use_true_random=False))
def test_objective_is_equivariant_under_relabelled_responses(name, kwargs, seed, prompts, responses, order):
    loss = tb.losses.make(name, **kwargs)
    permutation = list(range(responses))
    order.shuffle(permutation)
    pairs = with_fields(loss, tb.population(random_problem(seed, prompts, responses)))
    relabelled = with_fields(loss, tb.population(random_problem(seed, prompts, responses, permutation)))
    logits = torch.tensor(np.random.default_rng(seed + 1).normal(0, 1.5, size=(1, prompts, responses)))
    value, grad = value_and_grad(loss, logits, pairs)
    moved_value, moved_grad = value_and_grad(loss, logits[..., permutation], relabelled)
    np.testing.assert_allclose(moved_value.numpy(), value.numpy(), rtol=1e-10, atol=1e-12)
    scale = float(grad.abs().max()) + 1e-300
    np.testing.assert_allclose(moved_grad.numpy(), grad[..., permutation].numpy(), rtol=1e-8, atol=1e-10 * scale)


def per_run_fields(loss, runs: int):
    """Hyperparameters as ``[B]`` tensors (defaults scaled by 1, 0.8, 1.1, …) where valid; others kept."""
    factors = torch.tensor([1.0, 0.8, 1.1, 0.9][:runs], dtype=torch.float64)
    fields = {}
    for field in dataclasses.fields(loss):
        value = getattr(loss, field.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or field.name == "seed" or value == 0:
            continue
        try:
            dataclasses.replace(loss, **{field.name: value * factors})
        except ValueError:
            continue
        fields[field.name] = value * factors
    return fields


@pytest.mark.parametrize("name, kwargs", VARIANTS, ids=IDS)
@SETTINGS
@given(seed=st.integers(0, 2 ** 16), runs=st.integers(2, 4))
def test_runs_in_one_call_equal_separate_calls(name, kwargs, seed, runs):
    base = tb.losses.make(name, **kwargs)
    batched_fields = per_run_fields(base, runs)
    batched = dataclasses.replace(base, **batched_fields)
    prob = problem_for(base, seed, 2, 4)
    pairs = with_fields(base, tb.population(prob))
    logits = torch.tensor(np.random.default_rng(seed + 1).normal(0, 1.5, size=(runs, 2, prob.Y)))
    inputs = record_inputs(batched, torch.log_softmax(logits, -1), pairs)

    def evaluate(loss, inputs, count):
        # one training step's batch statistics; β-DPO's filter draws B runs from one generator, so
        # run b's draw depends on B (documented): its deterministic population state instead
        state = {}
        if loss.name == "beta_dpo":
            state = {"state": loss.population_state(inputs, pairs.weight)}
        elif loss.stateful:
            state = {"state": loss.update_state(loss.init_state(count, inputs["chosen_logp"]), inputs, pairs.weight)}
        if loss.name in TOKEN_LOSSES:      # no closed-form input_grads: autograd through the views
            return loss(**inputs, **state), ()
        return loss(**inputs, **state), loss.input_grads(**inputs, **state)

    values, grads = evaluate(batched, inputs, runs)
    for run in range(runs):
        single = dataclasses.replace(base, **{k: float(v[run]) for k, v in batched_fields.items()})
        one = {k: v[run:run + 1] for k, v in inputs.items()}
        value, grad = evaluate(single, one, 1)
        # the same float64 operations elementwise; batch statistics sum over one run's records
        np.testing.assert_allclose(values[run:run + 1].numpy(), value.numpy(), rtol=1e-12, atol=1e-14)
        for batched_grad, single_grad in zip(grads, grad, strict=True):
            np.testing.assert_allclose(batched_grad[run:run + 1].numpy(), single_grad.numpy(), rtol=1e-12, atol=1e-14)
    assert batched_fields or not any(isinstance(getattr(base, f.name), float) and getattr(base, f.name) != 0
                                     for f in dataclasses.fields(base)), "no per-run field was exercised"


def test_length_inputs_are_the_only_unbuilt_fields():
    """Every named per-record input a registered loss needs is built above (or is a length)."""
    built = {name for names, _ in FIELD_BUILDERS for name in names} | set(LENGTH_INPUTS)
    for name, kwargs in VARIANTS:
        needs = {need for need in tb.losses.make(name, **kwargs).needs
                 if not need.endswith(("_token_logratio", "_steps"))}   # views of a SequenceSpace table
        assert needs <= built, name
