"""SequenceSpace enumeration, token views, table <-> token conversions, token-level rewards and the
soft-Bellman optimum, each against a brute-force enumeration with itertools and NumPy."""
import itertools
import math

import numpy as np
import pytest
import torch

import toybench as tb


def brute_strings(vocab, max_len, min_len=1):
    return [s for n in range(min_len, max_len + 1) for s in itertools.product(range(vocab), repeat=n)]


def test_enumeration_order_size_and_views():
    space = tb.SequenceSpace(vocab=3, max_len=3)
    strings = brute_strings(3, 3)
    assert space.size == 39 == 3 + 9 + 27 and space.prefixes == 40 and space.actions == 4 and space.eos == 3
    for y, s in enumerate(strings):
        n = len(s)
        assert space.tokens[y, :n].tolist() == list(s) and space.tokens[y, n] == 3
        assert space.lengths[y] == n and space.steps[y] == n + 1
        assert space.step_mask[y].tolist() == [i <= n for i in range(4)]
        assert space.index(s) == y
        # the context of step i is the prefix of i tokens: its own tokens, read back from the tree
        for i in range(n + 1):
            prefix = int(space.step_prefix[y, i])
            assert int(space.depth[prefix]) == i
            if i:
                assert space.label(int(space.prefix_response[prefix])) == "".join("abc"[t] for t in s[:i])
    assert space.label(space.index((0, 2))) == "ac"
    assert len({space.label(y) for y in range(space.size)}) == space.size


def test_prefix_tree_children_and_allowed_actions():
    space = tb.SequenceSpace(vocab=2, max_len=3, min_len=2)
    assert space.size == 4 + 8
    for s in range(space.prefixes):
        depth = int(space.depth[s])
        assert space.allowed[s, :2].tolist() == [depth < 3] * 2
        assert bool(space.allowed[s, 2]) == (depth >= 2)
        for a in range(2):
            c = int(space.child[s, a])
            assert (c >= 0) == (depth < 3)
            if c >= 0:
                assert int(space.depth[c]) == depth + 1
    fixed = tb.SequenceSpace(2, 2, min_len=2)
    assert [fixed.label(y) for y in range(fixed.size)] == ["aa", "ab", "ba", "bb"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(vocab=0, max_len=2), "vocab"), (dict(vocab=2, max_len=0), "max_len"), (dict(vocab=2.5, max_len=2), "vocab"),
    (dict(vocab=True, max_len=2), "vocab"), (dict(vocab=2, max_len=2, min_len=3), "min_len"),
    (dict(vocab=1, max_len=1), "single response"),
])
def test_bad_spaces(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tb.SequenceSpace(**kwargs)


def test_size_limit_names_size_and_limit():
    with pytest.raises(ValueError, match=r"has 1398100 responses; toybench enumerates at most 65536"):
        tb.SequenceSpace(vocab=4, max_len=10)


def test_index_rejects_tokens_outside_the_vocab():
    space = tb.SequenceSpace(3, 2)
    with pytest.raises(ValueError, match="token ids must lie in 0..2"):
        space.index([0, 3])
    with pytest.raises(ValueError, match="1..2 tokens"):
        space.index([0, 1, 2])


def test_token_logp_against_prefix_sums_and_round_trip():
    """log π(a|s) = log(mass of strings starting s·a) − log(mass starting s), by brute force."""
    space = tb.SequenceSpace(vocab=2, max_len=3)
    strings = brute_strings(2, 3)
    gen = torch.Generator().manual_seed(0)
    table = torch.log_softmax(torch.randn(2, space.size, generator=gen, dtype=torch.float64), -1)
    tokens = space.token_logp(table)
    probs = table.exp().numpy()
    for b in range(2):
        for y, s in enumerate(strings):
            steps = list(s) + [2]
            for i, a in enumerate(steps):
                context = s[:i]
                under = sum(probs[b, k] for k, t in enumerate(strings) if t[:i] == context)
                if a == 2:
                    expected = probs[b, y] / under
                else:
                    expected = sum(probs[b, k] for k, t in enumerate(strings) if t[: i + 1] == context + (a,)) / under
                prefix = int(space.step_prefix[y, i])
                if i == 3:     # a forced EOS at max_len has probability 1
                    assert expected == pytest.approx(1.0)
                assert tokens[b, prefix, a].exp().item() == pytest.approx(expected, rel=1e-12)
    assert torch.allclose(space.sequence_sum(tokens), table, atol=1e-13, rtol=0)
    assert torch.isneginf(tokens[:, ~space.allowed]).all()


def test_token_level_reward_is_summed_along_each_string():
    space = tb.SequenceSpace(vocab=2, max_len=2)
    gen = torch.Generator().manual_seed(3)
    token_reward = torch.randn(1, space.prefixes, space.actions, generator=gen, dtype=torch.float64)
    token_reward[:, ~space.allowed] = 0
    ref = torch.log_softmax(torch.randn(1, space.size, generator=gen, dtype=torch.float64), -1)
    prob = tb.Problem(space, ref, reward=token_reward)
    for y, s in enumerate(brute_strings(2, 2)):
        contexts = [0] + [space.offsets[i] + int("".join(map(str, s[:i])), 2) for i in range(1, len(s) + 1)]
        expected = sum(token_reward[0, c, a].item() for c, a in zip(contexts, list(s) + [2], strict=True))
        assert prob.reward[0, y].item() == pytest.approx(expected, abs=1e-14)
    assert prob.replace(pair_dist="uniform").token_reward is not None


def test_problem_rejects_bad_rewards_on_sequence_spaces():
    space = tb.SequenceSpace(vocab=2, max_len=2)
    ref = torch.full((1, space.size), -math.log(space.size), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"reward must have shape \[1, 6\]"):
        tb.Problem(space, ref, reward=torch.zeros(1, 5))
    with pytest.raises(ValueError, match=r"token-level reward must have shape \[1, 7, 3\]"):
        tb.Problem(space, ref, reward=torch.zeros(1, 7, 2))
    bad = torch.zeros(1, space.prefixes, space.actions)
    bad[0, 0, space.eos] = 1.0          # EOS at the root: forbidden
    with pytest.raises(ValueError, match="does not allow"):
        tb.Problem(space, ref, reward=bad)
    with pytest.raises(ValueError, match="needs a SequenceSpace"):
        tb.Problem(tb.FlatSpace(3), torch.full((1, 3), -math.log(3)), token_reward=torch.zeros(1, 4, 3))


def test_problem_population_over_a_sequence_space():
    prob = tb.Problem.random(tb.SequenceSpace(2, 2), prompts=2, seed=0)
    pairs = tb.population(prob)
    assert prob.Y == 6 and pairs.size == 2 * 6 * 5
    assert pairs.weight.sum().item() == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------------------- soft-Bellman optimum
def brute_soft_value(space, prob, beta, prefix_tokens, p=0):
    """V*(s)/β = log Σ_{y extends s} π_ref(y|s)·e^{(R(y) − R_paid(s))/β}, by direct sums over strings."""
    strings = brute_strings(space.vocab, space.max_len, space.min_len)
    ref = prob.ref_logp[p].exp().numpy()
    n = len(prefix_tokens)
    below = [k for k, t in enumerate(strings) if t[:n] == tuple(prefix_tokens)]
    mass = sum(ref[k] for k in below)
    token_reward = prob.token_reward[p].numpy()

    def paid(tokens):
        total, s = 0.0, 0
        for a in tokens:
            total += token_reward[s, a]
            s = int(space.child[s, a])
        return total

    already = paid(prefix_tokens)
    terms = [ref[k] / mass * math.exp((prob.reward[p, k].item() - already) / beta) for k in below]
    return beta * math.log(sum(terms))


def test_soft_values_match_direct_sums_and_log_partition():
    space = tb.SequenceSpace(vocab=2, max_len=3)
    gen = torch.Generator().manual_seed(5)
    token_reward = torch.randn(2, space.prefixes, space.actions, generator=gen, dtype=torch.float64)
    token_reward[:, ~space.allowed] = 0
    ref = torch.log_softmax(torch.randn(2, space.size, generator=gen, dtype=torch.float64), -1)
    prob = tb.Problem(space, ref, reward=token_reward)
    beta = 0.7
    q, value = tb.optima.soft_values(prob, beta)
    for p in range(2):
        for prefix_tokens in [(), (0,), (1, 0), (1, 1, 0)]:
            s = 0
            for a in prefix_tokens:
                s = int(space.child[s, a])
            assert value[p, s].item() == pytest.approx(brute_soft_value(space, prob, beta, prefix_tokens, p),
                                                       abs=1e-12)
    np.testing.assert_allclose(value[:, 0] / beta, tb.optima.log_partition(prob, beta), atol=1e-12)
    # Q* = r + V*(child) on ordinary tokens, r on EOS
    s = int(space.child[0, 1])
    assert q[0, s, 0].item() == pytest.approx(token_reward[0, s, 0].item() + value[0, int(space.child[s, 0])].item())
    assert q[0, s, 2].item() == pytest.approx(token_reward[0, s, 2].item())


def test_token_policy_product_is_the_sequence_target_for_per_run_beta():
    prob = tb.Problem.random(tb.SequenceSpace(3, 3), prompts=2, seed=2)
    beta = torch.tensor([0.3, 1.0, 4.0])
    token = tb.optima.token_policy(prob, beta)
    assert token.shape == (3, 2, prob.space.prefixes, prob.space.actions)
    # normalised at every prefix, forbidden actions at −inf
    np.testing.assert_allclose(torch.logsumexp(token, -1), 0.0, atol=1e-12)
    # independent sequence target: log π_ref + R/β − logsumexp, in NumPy
    ref, reward = prob.ref_logp.numpy(), prob.reward.numpy()
    for b, value in enumerate(beta.tolist()):
        logits = ref + reward / value
        expected = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        np.testing.assert_allclose(tb.optima.token_target(prob, beta)[b].numpy(), expected, atol=1e-12)


def test_token_optima_need_a_sequence_space(e1):
    with pytest.raises(ValueError, match="need a SequenceSpace"):
        tb.optima.soft_values(e1, 1.0)
