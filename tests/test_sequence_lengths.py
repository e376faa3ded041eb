"""Length normalisation on a ``SequenceSpace``: ``simpo`` and ``ipo(length_normalized=True)`` read each
string's own token count (``space.lengths``, EOS not counted). Values and gradients against NumPy
formulas written here, with lengths taken from the token tuples the records are built from."""
import itertools

import numpy as np
import pytest
import torch

import toybench as tb
from toybench.objective import call_loss, record_inputs


def softplus(t):
    return np.logaddexp(0.0, t)


SPACE = tb.SequenceSpace(vocab=2, max_len=3)
STRINGS = [(0,), (1, 0), (0, 1, 1), (1,), (1, 1, 0), (0, 0)]
RECORDS = [(0, STRINGS[0], STRINGS[2]), (1, STRINGS[1], STRINGS[3]), (0, STRINGS[4], STRINGS[5]),
           (1, STRINGS[2], STRINGS[4]), (1, STRINGS[5], STRINGS[0])]


def simpo_numpy(lw, ll, nw, nl, beta, gamma, **_):
    """SimPO, arXiv 2405.14734, Eq. 6: −log σ(β/|y_w|·log π(y_w) − β/|y_l|·log π(y_l) − γ)."""
    return softplus(-(beta / nw * lw - beta / nl * ll - gamma))


def ipo_numpy(lw, ll, nw, nl, rw, rl, beta, **_):
    """IPO (arXiv 2310.12036, Eq. 17) with TRL's length normalisation: each log-ratio divided by
    its token count, (Δ̄ − 1/(2τ))²."""
    return ((lw - rw) / nw - (ll - rl) / nl - 1 / (2 * beta)) ** 2


CASES = [("simpo", dict(beta=2.0, gamma=0.5), simpo_numpy),
         ("ipo", dict(beta=0.3, length_normalized=True), ipo_numpy)]


def setup(seed=0):
    prob = tb.Problem.random(SPACE, prompts=2, seed=seed)
    rng = np.random.default_rng(seed)
    table = torch.log_softmax(torch.tensor(rng.normal(size=(1, 2, SPACE.size)) * 2), -1)
    records = [(x, SPACE.index(w), SPACE.index(l_)) for x, w, l_ in RECORDS]
    weights = rng.uniform(0.5, 2.0, size=len(records))
    pairs = tb.Pairs.from_records(prob, records, weights=torch.tensor(weights))
    return prob, table, pairs, weights / weights.sum()           # from_records normalises the weights


def numpy_objective(fn, hp, logp, ref, weights):
    """Σ_k ω_k·L_k from the token tuples (|y| = len(tuple)), ``logp``/``ref`` [P, Y] NumPy tables."""
    total = 0.0
    for (x, w, l_), omega in zip(RECORDS, weights, strict=True):
        yw, yl = SPACE.index(w), SPACE.index(l_)
        total += omega * fn(logp[x, yw], logp[x, yl], len(w), len(l_), rw=ref[x, yw], rl=ref[x, yl], **hp)
    return total


def test_space_lengths_are_token_counts():
    """The enumerated strings of SequenceSpace(2, 3) have the lengths of their token tuples."""
    for n in range(1, 4):
        for tokens in itertools.product(range(2), repeat=n):
            assert SPACE.lengths[SPACE.index(tokens)].item() == n


@pytest.mark.parametrize("name, hp, fn", CASES, ids=[c[0] for c in CASES])
def test_per_record_values_use_sequence_lengths(name, hp, fn):
    prob, table, pairs, _ = setup()
    per_record = call_loss(tb.losses.make(name, **hp), record_inputs(tb.losses.make(name, **hp), table, pairs))
    logp, ref = table[0].numpy(), prob.ref_logp.numpy()
    expected = [fn(logp[x, SPACE.index(w)], logp[x, SPACE.index(l_)], len(w), len(l_),
                   rw=ref[x, SPACE.index(w)], rl=ref[x, SPACE.index(l_)], **hp) for x, w, l_ in RECORDS]
    np.testing.assert_allclose(per_record[0].numpy(), expected, rtol=1e-13, atol=1e-13)
    # the lengths matter: with every length taken as 1 the values differ
    unit = [fn(logp[x, SPACE.index(w)], logp[x, SPACE.index(l_)], 1, 1,
               rw=ref[x, SPACE.index(w)], rl=ref[x, SPACE.index(l_)], **hp) for x, w, l_ in RECORDS]
    assert np.abs(np.array(unit) - expected).max() > 1e-2


@pytest.mark.parametrize("name, hp, fn", CASES, ids=[c[0] for c in CASES])
def test_training_step_follows_the_numpy_gradient(name, hp, fn):
    """One SGD step of ``tb.train`` (its fast gradient path) on a float64 Tabular policy equals the
    step along NumPy central differences of the NumPy objective in the logits (O(h²) ≈ 1e-10)."""
    prob, table, pairs, weights = setup(seed=1)
    ref = prob.ref_logp.numpy()

    def value(logits):
        logp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        return numpy_objective(fn, hp, logp, ref, weights)

    logits, h = table[0].numpy().copy(), 1e-5
    grad = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[index] += h
        down[index] -= h
        grad[index] = (value(up) - value(down)) / (2 * h)
    policy = tb.Tabular(prob, init=table, dtype=torch.float64)
    tb.train(policy, tb.losses.make(name, **hp), pairs, steps=1, optimizer="sgd", lr=0.1, log_every=1)
    expected = logits - 0.1 * grad
    expected -= np.logaddexp.reduce(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(policy.logp()[0].detach().numpy(), expected, atol=1e-8)
