"""The counter-based generator behind mini-batch draws (``toybench._numerics.counter_uniform``) and
the sampler built on it: SplitMix64 against plain-Python 64-bit arithmetic and its published first
output, rough uniformity (chi-square), the record law, and draws that ignore the rest of the batch."""
import numpy as np
import pytest
import torch
from scipy import stats

import toybench as tb
from toybench._numerics import counter_uniform, splitmix64
from toybench.train import _Sampler

MASK = (1 << 64) - 1


def splitmix64_python(state: int) -> int:
    """Vigna's splitmix64.c next() with its state advanced once, in Python integers mod 2^64."""
    z = (state + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def test_splitmix64_matches_the_reference():
    states = [0, 1, 2, 12345, -1, -(1 << 63), (1 << 63) - 1, 0x0123456789ABCDEF]
    got = splitmix64(torch.tensor(states, dtype=torch.int64)).tolist()
    assert [g & MASK for g in got] == [splitmix64_python(s & MASK) for s in states]
    assert got[0] & MASK == 0xE220A8397B1DCDAF       # splitmix64.c seeded with 0: its first output


def test_counter_uniform_is_the_documented_function_of_seed_step_and_index():
    seed, step, j = 7, 3, 4
    key = splitmix64_python((splitmix64_python(splitmix64_python(seed) + step)) + j & MASK)
    assert counter_uniform(torch.tensor([seed]), step, 5)[0, j].item() == (key >> 11) / 2.0**53


def test_counter_uniform_is_roughly_uniform():
    """200,000 draws (4 seeds × 50 steps × 1,000) in 100 equal bins: Pearson's statistic is
    χ²(99) under uniformity; fail beyond its 1 − 1e-6 quantile (a fixed seed, so deterministic)."""
    draws = torch.cat([counter_uniform(torch.tensor([0, 1, 2, 3]), step, 1000) for step in range(1, 51)])
    assert draws.min() >= 0 and draws.max() < 1
    counts = torch.bincount((draws * 100).long().reshape(-1), minlength=100).double()
    expected = draws.numel() / 100
    statistic = ((counts - expected) ** 2 / expected).sum().item()
    assert statistic < stats.chi2.ppf(1 - 1e-6, df=99)
    # neighbouring seeds and steps are not correlated (Pearson r of 50,000 pairs: sd 1/√50000 ≈ 0.0045)
    a, b = counter_uniform(torch.tensor([5, 6]), 1, 50_000)
    c = counter_uniform(torch.tensor([5]), 2, 50_000)[0]
    assert abs(np.corrcoef(a.numpy(), b.numpy())[0, 1]) < 0.025
    assert abs(np.corrcoef(a.numpy(), c.numpy())[0, 1]) < 0.025


def test_sampler_draws_follow_the_record_weights():
    """Records drawn ∝ weight (a zero-weight record never): chi-square over 4 × 20,000 draws."""
    prob = tb.Problem.random(tb.FlatSpace(3), prompts=1, seed=0)
    weights = [0.5, 0.3, 0.0, 0.15, 0.05, 0.0]
    records = [(0, a, b) for a in range(3) for b in range(3) if a != b]
    pairs = tb.Pairs.from_records(prob, records, weights=weights)
    sampler = _Sampler(pairs, 4, 20_000, torch.tensor([0, 1, 2, 3]))
    batch = sampler.draw()
    index = {(c, r): k for k, (_, c, r) in enumerate(records)}
    drawn = torch.tensor([index[c, r] for c, r in zip(batch.chosen.reshape(-1).tolist(),
                                                     batch.rejected.reshape(-1).tolist(), strict=True)])
    counts = torch.bincount(drawn, minlength=6).double().numpy()
    assert counts[2] == 0 and counts[5] == 0
    positive = np.array(weights) > 0
    expected = np.array(weights)[positive] * drawn.numel()
    statistic = ((counts[positive] - expected) ** 2 / expected).sum()
    assert statistic < stats.chi2.ppf(1 - 1e-6, df=positive.sum() - 1)


@pytest.mark.parametrize("shared", [True, False])
def test_a_runs_draws_do_not_depend_on_the_rest_of_the_batch(shared):
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=1)
    seeds = [11, 3, 8]
    pairs = tb.population(prob) if shared else tb.sample_pairs(prob, n=30, seed=seeds)
    together = _Sampler(pairs, 3, 9, torch.tensor(seeds))
    draws = [together.draw() for _ in range(3)]
    for b, seed in enumerate(seeds):
        own = pairs if shared else tb.sample_pairs(prob, n=30, seed=seed)
        alone = _Sampler(own, 1, 9, torch.tensor([seed]))
        for batch in draws:
            one = alone.draw()
            for name in ("prompt", "chosen", "rejected"):
                assert torch.equal(getattr(batch, name)[b], getattr(one, name)[0])


def test_counter_uniform_over_a_block_of_steps_equals_one_call_per_step():
    seeds = torch.tensor([3, 11, 2**40])
    block = counter_uniform(seeds, torch.arange(5, 9), 6)
    for k, step in enumerate(range(5, 9)):
        assert torch.equal(block[:, k], counter_uniform(seeds, step, 6))


def test_sampler_blocks_of_steps_draw_the_same_records_as_one_step_at_a_time(monkeypatch):
    from toybench.experiments import ipo_bandit

    pairs, seeds = ipo_bandit.dataset("D1"), torch.arange(4)
    one = _Sampler(pairs, 4, 5, seeds)
    monkeypatch.setattr(_Sampler, "BLOCK_DRAWS", 4 * 5 * 3)                  # blocks of 3 steps
    small = _Sampler(pairs, 4, 5, seeds)
    assert small.block_steps == 3 and one.block_steps > 10             # one block: every step
    for _ in range(10):
        a, b = one.draw(), small.draw()
        assert torch.equal(a.chosen, b.chosen) and torch.equal(a.rejected, b.rejected)
        assert torch.equal(a.prompt, b.prompt)
