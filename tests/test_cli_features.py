"""The command line's shared β, sweeps, lengths and scores (checked against closed forms computed
here with NumPy/SciPy), defaults and help, warnings, progress bar, JSON and `python -m toybench`.

Tolerances: rows from `compare` are tb.solve's float64 minimisers (certificates ≲ 1e-10), so a
closed form is matched to 1e-8 relative; `train` rows are Adam after 800 steps (within 1e-3)."""
import argparse
import inspect
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import E1_REF, E1_REWARD
from scipy.optimize import brentq

import toybench as tb
from toybench.cli import build_parser, main


def pistar(beta):
    logits = np.log(E1_REF) + E1_REWARD / beta
    return np.exp(logits - np.logaddexp.reduce(logits))


def compare_rows(argv, capsys):
    assert main(["compare", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tb_compare_is_the_function_with_runs_and_noise_rates():
    with pytest.raises(ValueError, match="noise must be"):
        tb.compare(tb.claims.core.e1("ref"), ["dpo"], noise="high")
    import torch
    losses = [tb.losses.make("dpo", beta=torch.tensor([0.5, 2.0], dtype=torch.float64)), "ipo"]
    frame = tb.compare(tb.claims.core.e1("ref"), losses, noise=torch.tensor([0.0, 0.1], dtype=torch.float64))
    assert list(zip(frame["beta"], frame["noise"], strict=True)) == [
        (0.5, 0.0), (0.5, 0.1), (2.0, 0.0), (2.0, 0.1), (0.1, 0.0), (0.1, 0.1)]
    assert frame["expected_reward"][2] == pytest.approx(pistar(2.0) @ E1_REWARD, rel=1e-8)


def test_each_loss_keeps_its_default_beta_and_the_table_shows_it(capsys):
    rows = compare_rows(["dpo", "simpo", "cal_dpo"], capsys)
    assert [row["beta"] for row in rows] == [0.1, 2.0, 0.001]
    assert rows[0]["expected_reward"] == pytest.approx(pistar(0.1) @ E1_REWARD, rel=1e-8)


def test_shared_beta_sets_every_loss_and_a_spec_overrides_it(capsys):
    rows = compare_rows(["dpo", "dpo:beta=2", "ipo", "orpo", "--beta", "0.5"], capsys)
    assert [row["beta"] for row in rows] == [0.5, 2.0, 0.5, None]
    assert rows[0]["expected_reward"] == pytest.approx(pistar(0.5) @ E1_REWARD, rel=1e-8)
    assert rows[1]["expected_reward"] == pytest.approx(pistar(2.0) @ E1_REWARD, rel=1e-8)
    assert rows[0]["kl_to_pistar"] < 1e-12 and rows[1]["kl_to_pistar"] < 1e-12


def test_compare_sweeps_beta_eps_and_noise_as_rows(capsys):
    rows = compare_rows(["cdpo", "--beta", "0.5,1", "--eps", "0.1,0.2", "--noise", "0,0.1"], capsys)
    assert len(rows) == 8
    assert {(r["beta"], r["noise"], r["loss"].split("eps=")[1]) for r in rows} == {
        (b, n, e) for b in (0.5, 1.0) for n in (0.0, 0.1) for e in ("0.1", "0.2")}


def test_train_beta_sweep_is_runs_on_the_run_axis(capsys):
    assert main(["train", "--loss", "dpo", "--beta", "0.5,1,2", "--steps", "800", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [run["spec"] for run in result["runs"]] == ["dpo:beta=0.5", "dpo:beta=1.0", "dpo:beta=2.0"]
    for beta, reward in zip((0.5, 1.0, 2.0), result["final"]["expected_reward"], strict=True):
        assert reward == pytest.approx(pistar(beta) @ E1_REWARD, abs=1e-3)


def test_runs_times_sweep_points_with_their_own_data_sets(capsys):
    assert main(["train", "--loss", "cdpo", "--eps", "0.1,0.3", "--runs", "2", "--samples", "50",
                 "--steps", "5", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["spec"].split("eps=")[1], r["data_seed"]) for r in runs] == [
        ("0.1", 0), ("0.1", 1), ("0.3", 0), ("0.3", 1)]


def test_lengths_reach_length_aware_losses(capsys):
    """SimPO at γ = 0: log π(y) = |y|(r(y)/β + c), c the root of Σπ = 1 (arXiv 2405.14734, logit link)."""
    lengths, beta = np.array([1.0, 2.0, 3.0, 1.0]), 2.0
    c = brentq(lambda c: np.exp(lengths * (E1_REWARD / beta + c)).sum() - 1, -50, 50, xtol=1e-14)
    expected = np.exp(lengths * (E1_REWARD / beta + c))
    (row,) = compare_rows(["simpo:beta=2,gamma=0", "--lengths", "1,2,3,1"], capsys)
    assert row["expected_reward"] == pytest.approx(expected @ E1_REWARD, rel=1e-8)   # reference: brentq, xtol 1e-14


def test_scores_reach_score_gap_losses_and_ddo(capsys):
    """da_dpo with equal scores has c = α_db, hence π*_{β·α_db}; ddo at α = β = 1 learns p_data = softmax(s)."""
    (row,) = compare_rows(["da_dpo:beta=0.5,alpha_db=2", "--scores", "-1,-1,-1,-1"], capsys)
    assert row["expected_reward"] == pytest.approx(pistar(1.0) @ E1_REWARD, rel=1e-8)
    scores = np.array([-0.5, 2.0, 1.0, 0.5])
    data = np.exp(scores - np.logaddexp.reduce(scores))
    (row,) = compare_rows(["ddo:alpha=1,beta=1", "--scores", "-.5,2,1,0.5"], capsys)
    assert row["expected_reward"] == pytest.approx(data @ E1_REWARD, rel=1e-6)


@pytest.mark.parametrize("candidates", ["uniform", "ref"])
def test_list_losses_on_plackett_luce_lists(candidates, capsys):
    """Plackett–Luce list-MLE on PL rankings of every 3-subset learns π*_β (arXiv 2305.18290, App. A.3)."""
    rows = compare_rows(["plackett_luce", "--list-size", "3", "--candidates", candidates, "--beta", "1"], capsys)
    assert rows[0]["case"] == "lists" and rows[0]["identified"] is None
    assert rows[0]["expected_reward"] == pytest.approx(pistar(1.0) @ E1_REWARD, rel=1e-8)


def test_cli_defaults_match_the_library():
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    train, compare = subparsers.choices["train"], subparsers.choices["compare"]
    library = inspect.signature(tb.train).parameters
    assert train.get_default("lr") == library["lr"].default
    assert train.get_default("optimizer") == library["optimizer"].default
    assert train.get_default("seed") == library["seed"].default
    problem_default = inspect.signature(tb.Problem).parameters["pair_dist"].default
    assert compare.get_default("pair_dist") == train.get_default("pair_dist") == problem_default
    assert inspect.signature(tb.Problem.random).parameters["pair_dist"].default == problem_default


def test_help_gives_every_option_a_meaning_and_its_default():
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in subparsers.choices.items():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            assert action.help, (name, action.dest)
            if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
                shown = action.default if isinstance(action.default, str) else repr(action.default)
                assert f"(default: {shown})" in text, (name, action.dest)


def test_runs_without_samples_warns(capsys):
    assert main(["train", "--runs", "2", "--steps", "2"]) == 0
    assert "identical runs" in capsys.readouterr().err
    assert main(["train", "--runs", "2", "--samples", "20", "--steps", "2"]) == 0
    assert capsys.readouterr().err == ""


def test_progress_bar_only_on_a_terminal(capsys, monkeypatch):
    assert main(["train", "--steps", "30"]) == 0
    assert "30/30" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["train", "--steps", "30"]) == 0
    assert "30/30" in capsys.readouterr().err


def test_compare_table_explains_its_columns_and_shows_solver_notes(capsys):
    assert main(["compare", "dpo", "rdpo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("problem: Problem(FlatSpace(4, lengths=[1.0, 1.0, 1.0, 1.0]), P=1, BT reward, "
                          "pair_dist='ref')\n")
    header = out.splitlines()[1].split()
    assert header[:3] == ["loss", "beta", "noise"]
    legend = out.split("columns:")[1]
    assert all(f"  {column}: " in legend for column in header)
    assert "never negative" in legend
    with pytest.raises(tb.NoFiniteMinimum) as found:
        tb.solve(tb.losses.make("rdpo"), tb.population(tb.claims.core.e1("ref")))
    note = " ".join(str(found.value).split())
    assert f"notes: rdpo:beta=0.1,eps=0.1: {note}" in " ".join(out.split())


def test_json_keeps_unicode_and_train_json_has_configuration_and_history(capsys, tmp_path):
    out_file = tmp_path / "rows.json"
    assert main(["list", "--json", "--json-out", str(out_file)]) == 0
    text = out_file.read_text(encoding="utf-8")
    assert capsys.readouterr().out == text and json.loads(text)
    assert "\\u" not in text and "λ" in text   # e.g. hyperparameter names such as λ in the citations
    assert main(["train", "--loss", "dpo:beta=1", "--steps", "10", "--log-every", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["loss"] == "dpo:beta=1" and result["config"]["steps"] == 10
    assert result["history"]["step"] == [0, 5, 10] and result["history"]["run"] == [0, 0, 0]
    assert result["history"]["loss"][-1] == result["final"]["loss"][0]


def test_python_dash_m_and_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"toybench {tb.__version__}"
    done = subprocess.run([sys.executable, "-m", "toybench", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"toybench {tb.__version__}"


def test_explain_prints_the_loss_card(capsys):
    from toybench.cards import card
    assert main(["explain", "cdpo"]) == 0
    assert capsys.readouterr().out == card("cdpo") + "\n"
    assert main(["explain", "nosuchloss"]) == 2
    assert "valid names" in capsys.readouterr().err


def test_train_metrics_choose_what_the_logged_steps_record(capsys):
    assert main(["train", "--metrics", "loss,win_rate", "--steps", "20", "--log-every", "10", "--json"]) == 0
    history = json.loads(capsys.readouterr().out)["history"]
    assert history["step"] == [0, 10, 20]
    assert history["win_rate"][1] is not None and history["entropy"][1] is None   # asked for / not asked for
    assert None not in history["entropy"][::2]                                    # first and last: everything
    assert main(["train", "--metrics", "loss,bogus"]) == 2
    assert "unknown metrics ['bogus']" in capsys.readouterr().err
