"""Random problems and hyperparameters for the stress tests of ``tb.solve`` (``test_solve_stress``)."""
import numpy as np
import torch
from independent_losses import Objective

import toybench as tb
from toybench.losses.fdiv import with_rewards

SPECS = {
    "dpo": [{"beta": 0.5}, {"beta": 2.0}],
    "ipo": [{"beta": 0.5}, {"beta": 1.0, "length_normalized": True}],
    "hinge": [{"beta": 1.0}, {"beta": 0.5, "reference_free": True}],
    "cdpo": [{"beta": 1.0, "eps": 0.1}, {"beta": 0.5, "eps": 0.3}],
    "rdpo": [{"beta": 1.0, "eps": 0.1}, {"beta": 2.0, "eps": 0.25}],
    "simpo": [{"beta": 2.0, "gamma": 0.5}, {"beta": 1.0, "gamma": 1.0}, {"beta": 2.0, "gamma": 0.0}],
    "sigmoid_norm": [{"beta": 1.0}],
    "r_dpo": [{"beta": 1.0, "alpha": 0.3}],
    "orpo": [{"lam": 0.1}, {"lam": 1.0}],
    "cpo": [{"beta": 1.0, "alpha": 1.0}],
    "alpha_po": [{"beta": 1.0, "alpha": 0.5}, {"beta": 2.0, "alpha": 0.0, "gamma": 0.5, "length_normalized": True},
                 {"beta": 1.0, "alpha": 0.25, "nll_weight": 1.0}],
    "asft": [{"lam": 1.0}, {"lam": 0.2}],
    "discopop": [{"beta": 1.0, "tau": 0.05}, {"beta": 0.5, "tau": 0.2}],
    "tan_principled": [{"beta": 1.0}],
    "bpo": [{"beta": 1.0, "h": "lr"}, {"beta": 1.0, "h": "kliep"}, {"beta": 1.0, "h": "lsif"},
            {"beta": 1.0, "h": "ba", "lam": 2.0}, {"beta": 1.0, "h": "ba", "lam": -0.5},
            {"beta": 1.0, "h": "kliep", "clip_min": 0.01}, {"beta": 1.0, "h": "lr", "clip_min": 0.2, "clip_max": 5.0}],
    "sba": [{"beta": 1.0, "lam": -0.5, "s": 4.0}, {"beta": 1.0, "lam": 1.2, "s": 4.0}],
    "fdpo": [{"beta": 1.0, "divergence": "forward_kl"}, {"beta": 1.0, "divergence": "js"},
             {"beta": 1.0, "divergence": "alpha", "alpha": 0.5}],
    "fpo": [{"beta": 1.0, "divergence": "alpha", "alpha": 0.3, "eps": 0.05},
            {"beta": 1.0, "divergence": "hellinger", "eps": 0.05}, {"beta": 1.0, "divergence": "js", "eps": 0.05},
            {"beta": 1.0, "mode": "exact", "divergence": "alpha", "alpha": 0.3, "beta_reward": 0.5},
            {"beta": 0.5, "mode": "exact", "divergence": "reverse_kl", "beta_reward": 1.0}],
    "exo": [{"beta": 1.0, "eps": 0.01}, {"beta": 1.0, "mode": "list", "beta_reward": 0.5}],
    "apo_zero": [{"beta": 1.0}],
    "apo_down": [{"beta": 1.0}],
    "nca": [{"beta": 1.0}],
    "cal_dpo": [{"beta": 1.0, "calib_weight": 0.5}],
    "dpop": [{"beta": 1.0, "lam": 5.0}, {"beta": 1.0, "lam": 50.0}],
    "minor_dpo": [{"beta": 1.0}],
    "rpo": [{"beta": 1.0, "alpha": 1.0}, {"beta": 1.0, "alpha": 0.5, "variant": "liu"}],
    "spo": [{"beta": 1.0, "lam": 1.0}, {"beta": 1.0, "lam": 2.0, "reading": "vf"}],
    "flex_dpo": [{"beta_plus": 1.0, "beta_minus": 0.8}],
    "madpo": [{"beta": 1.0}],
    "da_dpo": [{"beta": 1.0}],
    "ddo": [{"beta": 1.0, "alpha": 1.0}],
    "disco": [{}],
    "sppo": [{"beta": 1.0, "mode": "hard"}, {"beta": 0.5, "mode": "soft"}, {"beta": 1.0, "mode": "single"}],
    "plackett_luce": [{"beta": 1.0}],
    "lipo": [{"beta": 0.5}],
    "rank_dpo": [{"beta": 0.5}, {"beta": 1.0, "rank_source": "label"}],
    "tpo": [{"beta": 0.5}],
    "irpo": [{"beta": 1.0}],
    "anchored_dpo": [{"tau": 0.8}],
    "curry_dpo": [{"beta": 1.0}],
    "alpha_dpo": [{"beta": 2.5, "gamma": 1.5, "alpha": 0.2}, {"beta": 1.0, "gamma": 0.5, "alpha": 0.5}],
    "beta_dpo": [{"beta": 0.5}],
    "bco": [{"beta": 1.0}, {"beta": 1.0, "delta": "free"}, {"beta": 0.5, "delta": 0.3}],
    "kto": [{"beta": 1.0}, {"beta": 0.5, "lam_desirable": 1.3, "lam_undesirable": 1.0}],
}
"""Hyperparameters tried per flat loss (list losses as pair losses on Pairs; stateful losses,
whose population objective is a fixed point of ``population_state``: alpha_dpo, beta_dpo, bco
with a running or free δ, kto)."""
TOKEN = {"token_dpo": [{"beta": 1.0}, {"beta": 0.5}],
         "ld_dpo": [{"beta": 1.0, "alpha": 0.5}, {"beta": 1.0, "alpha": 0.0}],
         "autoregressive_dpo": [{"beta": 1.0, "segments": 0}, {"beta": 1.0, "segments": 2}],
         "d3po": [{"beta": 1.0}, {"beta": 0.5}]}
"""Token-level losses, on SequenceSpace(2, 2) problems (Y = 6: a, b, aa, ab, ba, bb)."""
SPECS.update(TOKEN)
NEEDS_SCORE_GAP = {"madpo", "da_dpo"}
NEEDS_WIN_PROBS = {"sppo"}
NEEDS_REWARDS = {"fpo", "exo"}
CASES = [(name, hyper) for name in sorted(SPECS) for hyper in SPECS[name]]


def draw(seed: int):
    """A random problem: P ≤ 3, Y ≤ 6, Dirichlet prompt weights, lengths 1–4, pair law ref or uniform."""
    rng = np.random.default_rng(seed)
    P, Y = int(rng.integers(1, 4)), int(rng.integers(2, 7))
    weights = rng.dirichlet(np.ones(P))
    lengths = rng.integers(1, 5, size=Y).astype(float)
    law = ["ref", "uniform"][int(rng.integers(2))]
    prob = tb.Problem.random(tb.FlatSpace(Y, lengths=lengths.tolist()), prompts=P, seed=seed, reward_scale=1.5,
                             prompt_weights=torch.tensor(weights), pair_dist=law)
    return prob, lengths, law


def draw_sequences(seed: int):
    """A random problem on SequenceSpace(2, 2): P ≤ 3, Dirichlet prompt weights, pair law ref or uniform,
    and the strings as token tuples (from the labels: letter i is token i)."""
    rng = np.random.default_rng(seed)
    P = int(rng.integers(1, 4))
    weights = rng.dirichlet(np.ones(P))
    law = ["ref", "uniform"][int(rng.integers(2))]
    space = tb.SequenceSpace(2, 2)
    prob = tb.Problem.random(space, prompts=P, seed=seed, reward_scale=1.5, prompt_weights=torch.tensor(weights),
                             pair_dist=law)
    strings = [tuple(ord(c) - ord("a") for c in space.label(y)) for y in range(space.size)]
    return prob, np.array([len(y) for y in strings], float), law, strings


def case(index: int, seed: int):
    """(loss, pairs, independent objective) for case ``index`` of CASES on draw ``seed``."""
    name, hyper = CASES[index % len(CASES)]
    if name in TOKEN:
        prob, lengths, law, strings = draw_sequences(seed)
    else:
        (prob, lengths, law), strings = draw(seed), None
    pairs = tb.population(prob)
    if name in NEEDS_SCORE_GAP:
        pairs = tb.losses.with_score_gap(pairs)
    if name in NEEDS_WIN_PROBS:
        pairs = tb.losses.with_win_probs(pairs)
    if name in NEEDS_REWARDS and hyper.get("mode") in ("exact", "list"):
        pairs = with_rewards(pairs)
    objective = Objective(name, hyper, prob.ref_logp.numpy(), prob.reward.numpy(), prob.prompt_weights.numpy(),
                          law, lengths, strings)
    return tb.losses.make(name, **hyper), pairs, objective
