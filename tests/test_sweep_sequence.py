"""Sweeps over sequence problems and policy classes: spec checks, each run against the same run trained
alone through the public API, sharding and re-chunking, and the memory model's parameter counts."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

import toybench as tb
from toybench import sweep
from toybench.autoregressive import AutoregressiveTabular
from toybench.shared_policies import MLP
from toybench.sweep import driver
from toybench.sweep.plan import BASE_BYTES, parameter_count
from toybench.sweep.run import INIT_SEED_OFFSET
from toybench.transformer import TinyTransformer

SPEC = """
[problem]
family = "sequence"
prompts = 2
vocab = 2
max_len = 3
instance = 4
[policy]
class = ["autoregressive", "transformer"]
init = "random"
init_scale = 0.3
width = 8
heads = 2
[data]
samples = 30
noise = 0.1
seeds = [7, 9]
[train]
lr = 0.05
steps = 6
log_every = 3
[losses.dpo]
beta = 0.5
"""
METRICS = ["objective", "kl_to_target", "kl_from_target", "tv_to_target", "kl_to_ref", "entropy", "win_rate",
           "expected_reward", "mass_on_best"]


def quiet(_message):
    pass


def alone(row):
    """The run of ``row`` built and trained by itself with the public API (float64)."""
    prob = tb.Problem.random(tb.SequenceSpace(2, 3), prompts=2, seed=4, pair_dist="uniform")
    pairs = tb.sample_pairs(prob, 30, noise=0.1, seed=int(row["seed"]))
    seed = int(row["seed"]) + INIT_SEED_OFFSET
    if row["policy"] == "autoregressive":
        policy = AutoregressiveTabular(prob, init_scale=0.3, seed=seed, dtype=torch.float64)
    else:
        policy = TinyTransformer(prob, width=8, heads=2, seed=seed, dtype=torch.float64)
    return tb.train(policy, tb.losses.make("dpo", beta=0.5), pairs, steps=6, lr=0.05, log_every=3,
                    target=tb.losses.make("dpo", beta=0.5).target(prob, 0.1))


def test_a_sequence_sweep_matches_each_run_trained_alone(tmp_path):
    driver.run_sweep(SPEC, tmp_path / "out", dtype="float64", log=quiet)
    runs, history = sweep.read_results(tmp_path / "out")
    assert len(runs) == 4 and len(history) == 4 * 3                       # steps 0, 3, 6
    assert sorted(runs.policy) == ["autoregressive"] * 2 + ["transformer"] * 2
    assert set(runs.responses) == {2 + 4 + 8} and set(runs.vocab) == {2} and set(runs.max_len) == {3}
    assert runs.policy_width[runs.policy == "transformer"].tolist() == [8, 8]
    for _, row in runs.iterrows():
        final = {k: float(v[0]) for k, v in alone(row).final.items()}
        final["objective"] = final.pop("loss")
        # float64 (eps 2.2e-16) through 6 Adam steps: stacked and single bmm round differently, ~1e-13
        for name in METRICS:
            assert math.isclose(row[name], final[name], rel_tol=1e-9, abs_tol=1e-12) or \
                (math.isnan(row[name]) and math.isnan(final[name])), (row.policy, name, row[name], final[name])
    # the two seeds differ (their own data and initialisation)
    for _, group in runs.groupby("policy"):
        assert group.objective.nunique() == 2


def test_sequence_sweeps_shard_bit_for_bit_and_rechunk_to_rounding(tmp_path):
    the_plan = sweep.plan(sweep.parse_spec(SPEC))
    one = BASE_BYTES + max(the_plan.bytes_per_run.values()) + 1
    assert [len(c.runs) for c in sweep.plan(sweep.parse_spec(SPEC), max_memory=one).chunks] == [1] * 4
    driver.run_sweep(SPEC, tmp_path / "whole", log=quiet)
    for i in (1, 2):
        driver.run_sweep(SPEC, tmp_path / "shared", shard_of=f"{i}/2", log=quiet, consolidate=False)
    driver.run_sweep(SPEC, tmp_path / "shared", log=quiet)          # all runs done: rebuilds the tables
    driver.run_sweep(SPEC, tmp_path / "single", max_memory=one, log=quiet)
    whole, shared, single = (sweep.read_results(tmp_path / name)[0].sort_values("run_id").reset_index(drop=True)
                             for name in ("whole", "shared", "single"))
    pd.testing.assert_frame_equal(whole[["run_id", *METRICS]], shared[["run_id", *METRICS]], check_exact=True)
    assert whole.run_id.tolist() == single.run_id.tolist()
    # one run per chunk: the same initialisation and data, float32 rounding of B=1 vs B=2 products only
    for name in METRICS:
        np.testing.assert_allclose(single[name], whole[name], rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("text, words", [
    ("[policy]\nclass = 'autoregressive'\n[losses.dpo]\n", ["policy.class", "autoregressive", "sequence"]),
    ("[problem]\nfamily = 'e1'\n[policy]\nclass = ['tabular', 'autoregressive']\n[losses.dpo]\n",
     ["autoregressive", "sequence"]),
    ("[problem]\nfamily = 'sequence'\n[policy]\nclass = 'transformer'\ndepth = 2\n[losses.dpo]\n",
     ["policy.depth", "allowed keys", "width"]),
    ("[problem]\nfamily = 'sequence'\n[policy]\nclass = 'mlp'\nwidth = 8\n[losses.dpo]\n",
     ["policy.width", "does not apply", "mlp", "transformer"]),
    ("[problem]\nfamily = 'sequence'\n[policy]\nclass = 'transformer'\ninit_scale = 0.5\n[losses.dpo]\n",
     ["policy.init_scale", "does not apply", "tabular"]),
    ("[problem]\nfamily = 'sequence'\n[policy]\nclass = 'transformer'\nwidth = [8, 6]\nheads = 4\n[losses.dpo]\n",
     ["policy.heads=4", "policy.width=6"]),
    ("[problem]\nfamily = 'sequence'\n[policy]\nclass = 'transformer'\nlayers = 5\n[losses.dpo]\n",
     ["policy.layers=5", "1..4"]),
    ("[problem]\nfamily = 'sequence'\nresponses = 5\n[losses.dpo]\n", ["problem.responses", "sequence", "random"]),
    ("[problem]\nvocab = 3\n[losses.dpo]\n", ["problem.vocab", "does not apply", "sequence"]),
    ("[problem]\nfamily = 'sequence'\nvocab = 0\n[losses.dpo]\n", ["problem.vocab=0", "integer >= 1"]),
    ("[problem]\nfamily = 'sequence'\nvocab = 1\nmax_len = 1\n[losses.dpo]\n",
     ["problem.vocab=1", "problem.max_len=1", "single response"]),
    ("[problem]\nfamily = 'sequence'\nvocab = 9\nmax_len = [2, 6]\n[losses.dpo]\n",
     ["problem.vocab=9", "problem.max_len=6", "at most"]),
    ("[problem]\nfamily = ['random', 'sequence']\nlengths = 'random'\n[losses.dpo]\n", ["problem.lengths", "sequence"]),
])
def test_bad_sequence_and_policy_specs_name_the_key(text, words):
    with pytest.raises(ValueError) as err:
        sweep.plan(sweep.parse_spec(text))
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_mlp_and_transformer_also_plan_on_flat_families():
    """Both are one-step models over the responses of a FlatSpace (``autoregressive.token_tree``)."""
    text = "[problem]\nfamily = ['random', 'e1']\n[policy]\nclass = ['tabular', 'mlp', 'transformer']\n[losses.dpo]\n"
    the_plan = sweep.plan(sweep.parse_spec(text))
    assert sorted({(c.key["family"], c.key["policy_class"]) for c in the_plan.chunks}) == sorted(
        (family, name) for family in ("random", "e1") for name in ("tabular", "mlp", "transformer"))


@pytest.mark.parametrize("family, name, sizes, build", [
    ("sequence", "autoregressive", {}, lambda prob: AutoregressiveTabular(prob)),
    ("sequence", "mlp", {"embed": 3, "hidden": 5}, lambda prob: MLP(prob, embed=3, hidden=5)),
    ("sequence", "transformer", {"width": 6, "layers": 2, "heads": 3},
     lambda prob: TinyTransformer(prob, width=6, layers=2, heads=3)),
    ("random", "mlp", {"embed": 3, "hidden": 5}, lambda prob: MLP(prob, embed=3, hidden=5)),
    ("random", "transformer", {"width": 4, "layers": 1, "heads": 2},
     lambda prob: TinyTransformer(prob, width=4, layers=1, heads=2)),
])
def test_memory_model_counts_the_policys_parameters(family, name, sizes, build):
    """The parameter term of ``bytes_per_run`` against the numbers the built policy holds per run."""
    space = tb.SequenceSpace(3, 2) if family == "sequence" else tb.FlatSpace(5)
    prob = tb.Problem.random(space, prompts=2)
    key = {"family": family, "prompts": 2, "responses": space.size, "vocab": 3, "max_len": 2,
           "policy_class": name, "policy_sizes": sizes}
    assert parameter_count(key) == sum(p[0].numel() for p in build(prob).parameters())
