"""Sweeps: spec checks, expansion and stacking, per-run numbers against separate single-run trainings,
tables, resuming, sharding and merging."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import E1_PISTAR, E1_REWARD

import toybench as tb
from toybench import sweep
from toybench.cli import main
from toybench.sweep import driver, store
from toybench.sweep.plan import BASE_BYTES

SPEC = """
name = "small"
[problem]
family = "random"
prompts = 2
responses = 4
instance = 3
[data]
samples = 40
noise = [0.0, 0.2]
seeds = [5, 6]
[train]
lr = [0.05, 0.1]
steps = 12
log_every = 4
[losses.dpo]
beta = [0.5, 2.0]
[losses.ipo]
beta = 1.0
[metrics]
target = "closed"
"""
METRICS = ["objective", "kl_to_target", "kl_from_target", "tv_to_target", "kl_to_ref", "entropy", "win_rate",
           "expected_reward", "mass_on_best"]


def quiet(_message):
    pass


def budget_for(runs: int) -> int:
    """A memory budget that fits ``runs`` runs of SPEC per chunk."""
    per_run = sweep.plan(sweep.parse_spec(SPEC)).bytes_per_run[0]
    return BASE_BYTES + runs * per_run + 1


def write(tmp_path, text=SPEC, name="spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------ spec checks
@pytest.mark.parametrize("text, words", [
    ("[problem]\ncolour = 1\n[losses.dpo]\n", ["problem.colour", "allowed keys", "prompts"]),
    ("speed = 1\n[losses.dpo]\n", ["speed", "allowed", "problem"]),
    ("[data]\nnoise = []\n[losses.dpo]\n", ["data.noise", "empty grid"]),
    ("[data]\nnoise = [0.1, 0.7]\n[losses.dpo]\n", ["data.noise=0.7", "[0.0, 0.5)"]),
    ("[train]\noptimizer = 'lion'\n[losses.dpo]\n", ["train.optimizer='lion'", "adam", "sgd"]),
    ("[train]\nsteps = 0\n[losses.dpo]\n", ["train.steps=0", "integer >= 1"]),
    ("[data]\nsamples = 'all'\n[losses.dpo]\n", ["data.samples='all'", "population"]),
    ("[losses.dpo]\nbeta = []\n", ["losses.dpo.beta", "empty grid"]),
    ("[losses.dpo]\ngamma = [1.0]\n", ["losses.dpo.gamma", "accepted", "beta"]),
    ("[losses.dpoo]\n", ["losses.dpoo", "valid names", "ipo"]),
    ("[problem]\n", ["at least one [losses.NAME]"]),
    ("[problem]\nfamily = 'e1'\nprompts = 3\n[losses.dpo]\n", ["problem.prompts", "e1", "pair_dist"]),
    ("[metrics]\nrecord = ['kl', 'entropy']\n[losses.dpo]\n", ["metrics.record", "kl_to_target"]),
    ("[data]\nseeds = [1, 1]\n[losses.dpo]\n", ["data.seeds", "twice"]),
    ("[losses.dpo\n", ["not valid TOML"]),
    ("[train]\nlog_every = [4, 0]\n[losses.dpo]\n", ["train.log_every=0", "integer >= 1"]),
    ("[train]\nbatch_size = 0\n[losses.dpo]\n", ["train.batch_size=0", '"full"', "records per step"]),
    ("[train]\nbatch_size = ['full', 'half']\n[losses.dpo]\n", ["train.batch_size='half'", '"full"']),
    ("[policy]\nclass = ['tabular', 'rnn']\n[losses.dpo]\n", ["policy.class='rnn'", "tabular", "transformer"]),
    ("[problem]\nfamily = ['random', 'e2']\n[losses.dpo]\n", ["problem.family='e2'", "random", "e1"]),
    ("[problem]\nfamily = ['random', 'e1']\nlengths = 'random'\n[losses.dpo]\n", ["problem.lengths", "e1"]),
    ("[problem]\nfamily = []\n[losses.dpo]\n", ["problem.family", "empty grid"]),
])
def test_bad_specs_fail_naming_the_key_and_the_allowed_values(text, words):
    with pytest.raises(ValueError) as err:
        sweep.plan(sweep.parse_spec(text))
    for word in words:
        assert word in str(err.value), (word, str(err.value))


@pytest.mark.parametrize("text, words", [
    ("[losses.dpo]\nbeta = [0.1, -1.0]\n", ["losses.dpo", "beta", "> 0"]),
    ("[losses.cdpo]\neps = [0.6]\n", ["losses.cdpo", "eps"]),
    ("[losses.simpo]\n", ["losses.simpo", "lengths", 'problem.lengths = "random"']),
    ("[problem]\npreference = 'general'\n[losses.madpo]\n", ["losses.madpo", "Bradley"]),
])
def test_loss_values_and_needs_are_checked_before_any_run(tmp_path, monkeypatch, text, words):
    calls = []
    monkeypatch.setattr(driver, "run_chunk", lambda *a, **k: calls.append(a))
    with pytest.raises(ValueError) as err:
        driver.run_sweep(text, tmp_path / "out", log=quiet)
    assert calls == [] and not (tmp_path / "out").exists()
    for word in words:
        assert word in str(err.value), (word, str(err.value))


@pytest.mark.parametrize("text", ["3/2", "0/2", "1/0", "a/b", "2", "-1/2"])
def test_bad_shards_are_rejected(text):
    with pytest.raises(ValueError, match="1 <= i <= n"):
        sweep.parse_shard(text)


def test_cli_rejects_shard_3_of_2(tmp_path, capsys):
    assert main(["sweep", str(write(tmp_path)), "--out", str(tmp_path / "o"), "--shard", "3/2"]) == 2
    assert "--shard '3/2'" in capsys.readouterr().err


@pytest.mark.parametrize("text, expected", [("4GiB", 4 << 30), ("512MB", 512_000_000), ("2G", 2 << 30),
                                            ("1.5KiB", 1536), ("1000", 1000)])
def test_memory_sizes(text, expected):
    assert sweep.parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0"])
def test_bad_memory_sizes(text):
    with pytest.raises(ValueError, match="memory size"):
        sweep.parse_memory(text)


# ------------------------------------------------------------------------ expansion and stacking
def test_runs_stacks_and_chunks():
    the_plan = sweep.plan(sweep.parse_spec(SPEC))
    # sampled data: noise, lr, beta and seeds are stacked; dpo: 2 noise × 2 lr × 2 β × 2 seeds, ipo: 2 × 2 × 1 × 2
    assert the_plan.runs == 16 + 8
    assert len(the_plan.chunks) == 2
    assert sorted(len(c.runs) for c in the_plan.chunks) == [8, 16]
    population = sweep.plan(sweep.parse_spec(SPEC.replace("samples = 40", 'samples = "population"')))
    # population data share records: one stack per noise rate and loss
    assert len(population.chunks) == 4 and population.runs == 24
    assert all(len({r["noise"] for r in c.runs}) == 1 for c in population.chunks)
    ids = [r["run_id"] for c in the_plan.chunks for r in c.runs]
    assert len(set(ids)) == len(ids)


def test_grids_over_family_policy_class_log_every_and_batch_size_split_stacks():
    text = SPEC.replace('family = "random"', 'family = ["random", "e1"]').replace(
        "log_every = 4", "log_every = [4, 6]\nbatch_size = ['full', 5]").replace(
        "[data]", '[policy]\nclass = ["tabular"]\n[data]')
    the_plan = sweep.plan(sweep.parse_spec(text))
    keys = {(c.key["family"], c.key["prompts"], c.key["responses"], c.key["log_every"], c.key["batch_size"])
            for c in the_plan.chunks}
    # e1 cells take P=1, Y=4 whatever the random problem's grids say; "full" is written 0
    assert keys == {(family, prompts, 4, every, batch) for family, prompts in (("random", 2), ("e1", 1))
                    for every in (4, 6) for batch in (0, 5)}
    assert the_plan.runs == 24 * 8 and len(the_plan.chunks) == 2 * 8
    ids = [r["run_id"] for c in the_plan.chunks for r in c.runs]
    assert len(set(ids)) == len(ids)


def test_chunks_fit_the_memory_budget():
    spec = sweep.parse_spec(SPEC)
    the_plan = sweep.plan(spec, max_memory=budget_for(5))
    assert max(len(c.runs) for c in the_plan.chunks) == 5 and the_plan.runs == 24
    with pytest.raises(ValueError, match="does not fit one run"):
        sweep.plan(spec, max_memory=1000)


def test_shards_partition_the_chunks():
    the_plan = sweep.plan(sweep.parse_spec(SPEC), max_memory=budget_for(5))
    shards = [sweep.shard(the_plan, i, 3) for i in (1, 2, 3)]
    ids = [c.id for part in shards for c in part]
    assert sorted(ids) == sorted(c.id for c in the_plan.chunks) and len(set(ids)) == len(ids)
    assert all(part for part in shards)


def test_template_and_examples_parse_and_plan(capsys):
    assert main(["sweep", "--template"]) == 0
    assert sweep.plan(sweep.parse_spec(capsys.readouterr().out)).runs > 0
    examples = sorted((Path(__file__).parents[1] / "examples").glob("*.toml"))
    assert examples
    for path in examples:
        assert sweep.plan(sweep.load_spec(path)).runs > 0, path


def test_dry_run_prints_stacks_chunks_and_memory(tmp_path, capsys):
    assert main(["sweep", str(write(tmp_path)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "24 runs in 2 chunks" in out and "stack 1: ipo" in out and "memory estimate" in out
    assert "hp_beta [0.5, 2] (2)" in out
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------ numbers
def single_run(row, steps=12, lr=None):
    """The run of ``row`` trained alone with scalar hyperparameters (no stacking)."""
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=3, pair_dist="uniform")
    pairs = tb.sample_pairs(prob, 40, noise=row["noise"], seed=int(row["seed"]))
    loss = tb.losses.make(row["loss"], beta=row["hp_beta"])
    policy = tb.Tabular(prob)
    history = tb.train(policy, loss, pairs, steps=steps, lr=row["lr"], log_every=4)
    return history


def test_every_row_matches_its_run_trained_alone(tmp_path):
    driver.run_sweep(SPEC, tmp_path / "out", log=quiet)
    runs, history = sweep.read_results(tmp_path / "out")
    assert len(runs) == 24 and len(history) == 24 * 4        # steps 0, 4, 8, 12
    assert set(METRICS) <= set(runs.columns)
    # DPO's and IPO's closed forms exist at noise 0 (IPO's also with flips), whatever runs they are stacked with
    assert runs.kl_to_target[runs.noise == 0].notna().all()
    assert runs.kl_to_target[(runs.noise > 0) & (runs.loss == "dpo")].isna().all()
    for _, row in runs.iterrows():
        alone = single_run(row)
        final = {k: float(v[0]) for k, v in alone.final.items()}
        final["objective"] = final.pop("loss")
        # the same float32 program on one run; stacked runs may round differently (float32 eps ~1e-7, 12 steps)
        for name in METRICS:
            assert math.isclose(row[name], final[name], rel_tol=1e-4, abs_tol=1e-6) or \
                (math.isnan(row[name]) and math.isnan(final[name])), (name, row[name], final[name])
        curve = history[history.run_id == row.run_id].sort_values("step")
        assert curve.step.tolist() == alone.steps
        np.testing.assert_allclose(curve.kl_to_ref, [float(r["kl_to_ref"][0]) for r in alone.records],
                                   rtol=1e-4, atol=1e-6)


def test_e1_population_runs_reach_the_closed_form_optimum(tmp_path):
    """DPO on the E1 population converges to π*_β ∝ π_ref·e^{r/β}; at β = 1 its expected reward is
    Σ π*·r with the tabulated π* (6 digits)."""
    spec = """
[problem]
family = "e1"
[train]
lr = 0.1
steps = 1500
[losses.dpo]
beta = [1.0, 2.0]
[metrics]
record = ["tv_to_target", "expected_reward"]
"""
    driver.run_sweep(spec, tmp_path / "out", log=quiet)
    runs, _ = sweep.read_results(tmp_path / "out")
    runs = runs.set_index("hp_beta")
    assert sorted(runs.index) == [1.0, 2.0] and list(runs.columns[-2:]) == ["tv_to_target", "expected_reward"]
    # float32 training to the optimum: TV below 1e-3; π* tabulated to 6 digits
    assert (runs.tv_to_target < 1e-3).all()
    assert math.isclose(runs.expected_reward[1.0], float(E1_PISTAR @ E1_REWARD), abs_tol=3e-3)


def test_float64_and_random_init(tmp_path):
    spec = SPEC.replace("[data]", "[policy]\ninit = 'random'\ninit_scale = 0.5\n[data]")
    driver.run_sweep(spec, tmp_path / "out", dtype="float64", device="cpu", log=quiet)
    runs, history = sweep.read_results(tmp_path / "out")
    assert (runs.dtype == "float64").all() and (runs.init == "random").all()
    start = history[history.step == 0].merge(runs[["run_id", "seed"]], on="run_id")
    # a random start is away from π_ref; it depends on the run's seed only
    assert (start.kl_to_ref > 0.01).all()
    by_seed = start.groupby("seed").kl_to_ref
    assert (by_seed.nunique() == 1).all() and by_seed.first().nunique() == 2


def test_solve_target(tmp_path):
    spec = SPEC.replace('target = "closed"', 'target = "solve"').replace("[losses.ipo]\nbeta = 1.0\n", "")
    driver.run_sweep(spec, tmp_path / "out", log=quiet)
    runs, _ = sweep.read_results(tmp_path / "out")
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=3, pair_dist="uniform")
    for _, row in runs.iterrows():
        pairs = tb.sample_pairs(prob, 40, noise=row["noise"], seed=int(row["seed"]))
        loss = tb.losses.make("dpo", beta=row["hp_beta"])
        if math.isnan(row["kl_to_target"]):     # 40 records may leave a margin free to grow forever
            with pytest.raises(tb.NoFiniteMinimum):
                tb.solve(loss, pairs)
            continue
        alone = tb.train(tb.Tabular(prob), loss, pairs, steps=12, lr=row["lr"], target=tb.solve(loss, pairs).logp)
        assert math.isclose(row["kl_to_target"], float(alone.final["kl_to_target"][0]), rel_tol=1e-4)
    assert runs.kl_to_target.notna().any()


def test_a_run_whose_target_solve_cannot_certify_gets_nan_distances(tmp_path, monkeypatch):
    """tb.SolveFailed (no certified answer) is not a result: the run trains, its target columns are NaN."""
    import sys
    solve_module = sys.modules["toybench.solve"]   # the package (tb.solve is its function)

    def refuse(loss, pairs, **options):
        raise tb.SolveFailed("no certificate", logp=None, certificate=1.0, tolerance=1e-8, tried=["test"])

    monkeypatch.setattr(solve_module, "solve", refuse)
    spec = SPEC.replace('target = "closed"', 'target = "solve"').replace("[losses.ipo]\nbeta = 1.0\n", "")
    driver.run_sweep(spec, tmp_path / "out", log=quiet)
    runs, _ = sweep.read_results(tmp_path / "out")
    assert runs.kl_to_target.isna().all() and runs.kl_to_ref.notna().all()


# ------------------------------------------------------------------------ resuming, sharding, merging
COMPARED = ["run_id", "loss", "hp_beta", "noise", "lr", "seed", *METRICS]


def same_numbers(first: Path, second: Path):
    a, ha = sweep.read_results(first)
    b, hb = sweep.read_results(second)
    pd.testing.assert_frame_equal(a[COMPARED].sort_values("run_id").reset_index(drop=True),
                                  b[COMPARED].sort_values("run_id").reset_index(drop=True), check_exact=True)
    pd.testing.assert_frame_equal(ha.sort_values(["run_id", "step"]).reset_index(drop=True),
                                  hb.sort_values(["run_id", "step"]).reset_index(drop=True), check_exact=True)


def test_shards_merge_to_the_same_numbers_as_one_pass(tmp_path):
    budget = str(budget_for(5))
    spec = str(write(tmp_path))
    assert main(["sweep", spec, "--out", str(tmp_path / "whole"), "--max-memory", budget]) == 0
    for i in (1, 2, 3):
        assert main(["sweep", spec, "--out", str(tmp_path / f"s{i}"), "--shard", f"{i}/3",
                     "--max-memory", budget]) == 0
    assert main(["sweep", "merge", str(tmp_path / "merged"), *(str(tmp_path / f"s{i}") for i in (1, 2, 3))]) == 0
    same_numbers(tmp_path / "whole", tmp_path / "merged")


MINIBATCH = SPEC.replace("log_every = 4", "log_every = 4\nbatch_size = [3, 7]").replace(
    "samples = 40", 'samples = ["population", 40]')


def test_minibatch_sweeps_shard_bit_for_bit_and_rechunk_to_rounding(tmp_path):
    """Mini-batch draws are keyed by each run's seed (the same records in any chunk: see
    tests/test_counter_rng.py), so sharding changes no bit, and a different ``--max-memory`` only
    the float32 rounding: torch's CPU kernels round vectorised elements and a tensor's scalar tail
    differently (e.g. ``sigmoid``), and which elements form the tail depends on the chunk size."""
    the_plan = sweep.plan(sweep.parse_spec(MINIBATCH))
    small = BASE_BYTES + 2 * max(the_plan.bytes_per_run.values()) + 1
    assert max(len(c.runs) for c in the_plan.chunks) == 16
    assert max(len(c.runs) for c in sweep.plan(sweep.parse_spec(MINIBATCH), max_memory=small).chunks) == 2
    driver.run_sweep(MINIBATCH, tmp_path / "whole", log=quiet)
    for i in (1, 2):
        driver.run_sweep(MINIBATCH, tmp_path / "shared", shard_of=f"{i}/2", log=quiet, consolidate=False)
    assert main(["sweep", "merge", str(tmp_path / "shared")]) == 0
    same_numbers(tmp_path / "whole", tmp_path / "shared")
    driver.run_sweep(MINIBATCH, tmp_path / "small", max_memory=small, log=quiet)
    whole, small_runs = (sweep.read_results(tmp_path / name)[0].sort_values("run_id").reset_index(drop=True)
                         for name in ("whole", "small"))
    assert whole.run_id.tolist() == small_runs.run_id.tolist()
    # float32 (eps 1.2e-7) through 12 Adam steps of O(1) quantities: 1e-5 relative is ~100 eps
    for name in METRICS:
        np.testing.assert_allclose(small_runs[name], whole[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_a_minibatch_row_matches_its_run_trained_alone(tmp_path):
    driver.run_sweep(MINIBATCH.replace('samples = ["population", 40]', "samples = 40"), tmp_path / "out", log=quiet)
    runs, _ = sweep.read_results(tmp_path / "out")
    assert sorted(set(runs.batch_size)) == [3, 7]
    for _, row in runs.iloc[::5].iterrows():
        prob = tb.Problem.random(tb.FlatSpace(4), prompts=2, seed=3, pair_dist="uniform")
        pairs = tb.sample_pairs(prob, 40, noise=row["noise"], seed=int(row["seed"]))
        alone = tb.train(tb.Tabular(prob), tb.losses.make(row["loss"], beta=row["hp_beta"]), pairs, steps=12,
                         lr=row["lr"], log_every=4, batch_size=int(row["batch_size"]), seed=int(row["seed"]))
        # the same float32 program on one run (float32 eps ~1e-7, 12 steps)
        assert math.isclose(row["kl_to_ref"], float(alone.final["kl_to_ref"][0]), rel_tol=1e-4, abs_tol=1e-6)


def test_rerun_skips_finished_runs(tmp_path):
    first = driver.run_sweep(SPEC, tmp_path / "out", log=quiet)
    again = driver.run_sweep(SPEC, tmp_path / "out", log=quiet)
    assert (first["trained"], again["trained"], again["skipped"]) == (24, 0, 24)


def test_killed_sweep_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    budget = budget_for(5)
    driver.run_sweep(SPEC, tmp_path / "whole", max_memory=budget, log=quiet)
    real, calls = driver.run_chunk, []

    def dies_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(driver, "run_chunk", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        driver.run_sweep(SPEC, tmp_path / "out", max_memory=budget, log=quiet)
    parts = sorted(p.name for p in (tmp_path / "out" / "parts").iterdir())
    assert len([p for p in parts if ".runs." in p]) == 2 and not [p for p in parts if p.startswith(".")]
    monkeypatch.setattr(driver, "run_chunk", real)
    resumed = driver.run_sweep(SPEC, tmp_path / "out", max_memory=budget, log=quiet)
    assert resumed["skipped"] == sum(len(c.runs) for c in sweep.plan(sweep.parse_spec(SPEC), max_memory=budget).chunks[:2])
    same_numbers(tmp_path / "whole", tmp_path / "out")


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    frame = pd.DataFrame({"run_id": ["a"], "x": [1.0]})

    def broken(self, path, **kwargs):
        Path(path).write_text("half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError):
        store.atomic_write_frame(frame, tmp_path / "runs.parquet")
    assert not (tmp_path / "runs.parquet").exists()


def test_a_directory_of_another_spec_is_refused(tmp_path, capsys):
    driver.run_sweep(SPEC, tmp_path / "out", log=quiet)
    with pytest.raises(ValueError, match="different sweep"):
        driver.run_sweep(SPEC.replace("steps = 12", "steps = 13"), tmp_path / "out", log=quiet)
    with pytest.raises(ValueError, match="different sweep"):
        driver.run_sweep(SPEC, tmp_path / "out", dtype="float64", log=quiet)
    # comments and layout are not the spec
    assert driver.run_sweep("# a comment\n" + SPEC, tmp_path / "out", log=quiet)["trained"] == 0
    other = tmp_path / "other"
    driver.run_sweep(SPEC.replace("instance = 3", "instance = 4"), other, log=quiet)
    assert main(["sweep", "merge", str(tmp_path / "m"), str(tmp_path / "out"), str(other)]) == 2
    assert "different sweeps" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        driver.run_sweep(SPEC, tmp_path / "junk", log=quiet)


def test_csv_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "table_format", lambda: "csv")
    driver.run_sweep(SPEC, tmp_path / "out", log=quiet)
    assert (tmp_path / "out" / "runs.csv").is_file() and (tmp_path / "out" / "history.csv").is_file()
    runs, history = sweep.read_results(tmp_path / "out")
    assert len(runs) == 24 and set(history.run_id) == set(runs.run_id)


def test_devices(tmp_path):
    with pytest.raises(ValueError, match="cpu"):
        driver.resolve_device("tpu")
    assert driver.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            driver.resolve_device("cuda")


def test_per_run_noise_on_the_population_grid_trains_every_run():
    """Stacked runs with one noise rate each on the population (the [P, Y, Y] grid with per-run
    weights, a loss without the plain-margin shortcut) match the same runs trained alone."""
    prob = tb.Problem.random(tb.FlatSpace(4), prompts=1, seed=0)
    rates = torch.tensor([0.0, 0.1, 0.3], dtype=torch.float64)
    together = tb.Tabular(prob, runs=3)
    tb.train(together, tb.losses.make("nca", beta=0.5), tb.population(prob, rates), steps=5, log_every=5)
    for b, rate in enumerate(rates.tolist()):
        alone = tb.Tabular(prob)
        tb.train(alone, tb.losses.make("nca", beta=0.5), tb.population(prob, rate), steps=5, log_every=5)
        # float32 rounding of five Adam steps on logits of order 1
        torch.testing.assert_close(together.logits[b], alone.logits[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("extra, message", [(["--backend", "ray", "--shard", "1/2"], "do not mix"),
                                            (["--workers", "2"], "--backend ray only"),
                                            (["--dtype", "float16"], "invalid choice")])
def test_cli_option_conflicts(tmp_path, capsys, extra, message):
    try:
        status = main(["sweep", str(write(tmp_path)), "--out", str(tmp_path / "o"), *extra])
    except SystemExit as exit_:       # argparse rejects a bad choice itself
        status = exit_.code
    assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_shards_sharing_one_directory(tmp_path):
    budget = budget_for(5)
    driver.run_sweep(SPEC, tmp_path / "whole", max_memory=budget, log=quiet)
    for i in (1, 2):
        driver.run_sweep(SPEC, tmp_path / "shared", shard_of=f"{i}/2", max_memory=budget, log=quiet,
                         consolidate=False)
    assert not (tmp_path / "shared" / "runs.parquet").exists()
    assert main(["sweep", "merge", str(tmp_path / "shared")]) == 0
    same_numbers(tmp_path / "whole", tmp_path / "shared")


def test_progress_bar_counts_runs_and_run_steps(tmp_path, capsys):
    driver.run_sweep(SPEC, tmp_path / "out", progress=True, log=quiet)
    err = capsys.readouterr().err
    # 24 runs × 12 steps = 288 run-steps; tqdm's rate unit is run-step/s
    assert "runs 24/24" in err and "288/288" in err and "run-step/s" in err
    driver.run_sweep(SPEC, tmp_path / "again", log=quiet)        # not a terminal: no bar
    assert "run-step" not in capsys.readouterr().err


def test_shards_balance_run_steps():
    # chunks 0..4 of 2, 4, 1, 3, 2 runs (equal steps) on 2 shards, largest first to the least loaded:
    # #1 (4) → shard 1, #3 (3) → 2, #0 (2) → 2 (3 < 4), #4 (2) → 1 (4 < 5), #2 (1) → 2 (5 < 6)
    chunks = tuple(sweep.Chunk(i, i, {"steps": 10}, tuple({"run_id": f"{i}-{r}"} for r in range(size)))
                   for i, size in enumerate([2, 4, 1, 3, 2]))
    the_plan = sweep.Plan(chunks, {}, {})
    first, second = (sweep.shard(the_plan, i, 2) for i in (1, 2))
    assert [c.index for c in first] == [1, 4] and [c.index for c in second] == [0, 2, 3]
    assert sum(len(c.runs) for c in first) == 6 and sum(len(c.runs) for c in second) == 6
