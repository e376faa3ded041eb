"""The command line: verify's table, JSON and exit codes; list; train; compare (closed forms)."""
import json

import numpy as np
import pytest
from conftest import E1_REF, E1_REWARD

from toybench.cli import main


def test_verify_json_subset(capsys):
    assert main(["verify", "--json", "--only", "ipo.*"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records and all(r["id"].startswith("ipo.") for r in records)
    assert set(records[0]) >= {"id", "citation", "assumptions", "measured", "comparison", "tolerance",
                               "verdict", "expected"}
    assert all(r["verdict"] == r["expected"] for r in records)


def test_verify_table_counts_expected_failures(capsys):
    assert main(["verify", "--only", "cdpo.*"]) == 0
    out = capsys.readouterr().out
    assert "cdpo.recovers_pistar_under_flips" in out and "expected to fail" in out


def test_verify_exit_code_when_a_verdict_is_unexpected(capsys, monkeypatch):
    from toybench.claims import registry
    flipped = registry.REGISTRY["ipo.two_action"]
    monkeypatch.setitem(registry.REGISTRY, "ipo.two_action",
                        registry.Claim(flipped.id, flipped.citation, flipped.assumptions, flipped.measure,
                                       flipped.comparison, flipped.tolerance, "fails"))
    assert main(["verify", "--only", "ipo.two_action"]) == 1


def test_verify_unknown_pattern_is_an_error(capsys):
    assert main(["verify", "--only", "nothing.*"]) == 2
    assert "no claim id matches" in capsys.readouterr().err


def test_list_names_every_loss(capsys):
    import toybench as tb
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["name"] for r in rows) == tb.losses.names()
    dpo = next(r for r in rows if r["name"] == "dpo")
    assert dpo["target"] == "closed" and "2305.18290" in dpo["source"]


def test_compare_json_matches_closed_forms(capsys, tmp_path):
    csv = tmp_path / "cmp.csv"
    assert main(["compare", "dpo:beta=1.0", "hinge:beta=1.0", "--pair-dist", "uniform", "--json",
                 "--csv", str(csv)]) == 0
    rows = json.loads(capsys.readouterr().out)
    logits = np.log(E1_REF) + E1_REWARD
    pistar = np.exp(logits - np.logaddexp.reduce(logits))
    dpo, hinge = rows
    assert dpo["tv_to_pistar"] < 1e-8 and dpo["kl_to_pistar"] < 1e-12
    assert dpo["expected_reward"] == pytest.approx(float(pistar @ E1_REWARD), rel=1e-9)
    assert dpo["entropy"] == pytest.approx(float(-(pistar * np.log(pistar)).sum()), rel=1e-9)
    # hinge on E1 under the uniform pair law: G = (0, 1, 2, 3)/β (docs/losses.md)
    hinge_logits = np.log(E1_REF) + np.arange(4.0)
    hinge_pi = np.exp(hinge_logits - np.logaddexp.reduce(hinge_logits))
    assert hinge["mass_on_best"] == pytest.approx(hinge_pi[3], rel=1e-7)
    assert csv.read_text().splitlines()[0].startswith("loss,")


def test_compare_on_a_random_problem(capsys):
    assert main(["compare", "dpo", "--problem", "random", "--responses", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["case"] == "convex"


def test_train_prints_final_metrics_and_plot(capsys, tmp_path):
    plot = tmp_path / "curves.png"
    assert main(["train", "--loss", "dpo:beta=1.0", "--steps", "800", "--lr", "0.05", "--json",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    final = json.loads(out[:out.rindex("}") + 1])["final"]
    assert final["tv_to_target"][0] < 1e-3
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_plot_has_the_objective_at_every_logged_step(monkeypatch, tmp_path):
    """The loss curve needs the objective between the first and last step, which the default
    history leaves out: ``--plot`` asks for it."""
    import toybench.cli.train as cli_train
    drawn = {}
    monkeypatch.setattr(cli_train, "_plot_history", lambda history, *args, **kw: drawn.update(frame=history.to_frame()))
    assert main(["train", "--loss", "dpo", "--steps", "50", "--log-every", "10", "--plot",
                 str(tmp_path / "c.png")]) == 0
    assert drawn["frame"]["loss"].notna().sum() == 6   # steps 0, 10, ..., 50


def test_train_target_solve_on_sampled_data(capsys):
    """--target solve: the KL/TV columns measure the distance to tb.solve's minimiser of the data set
    trained on (cDPO has no closed form there, so --target closed gives null columns)."""
    argv = ["train", "--loss", "cdpo:beta=1.0,eps=0.1", "--samples", "300", "--runs", "2", "--steps", "3000",
            "--lr", "0.05", "--json"]
    assert main(argv) == 0
    closed = json.loads(capsys.readouterr().out)["final"]
    assert closed["tv_to_target"] == [None, None] and closed["kl_to_ref"][0] > 0.1
    assert main(argv + ["--target", "solve"]) == 0
    solved = json.loads(capsys.readouterr().out)["final"]
    # Adam (lr 0.05, 3000 steps) on a strictly convex objective ends within 1e-4 TV of its minimiser
    assert max(solved["tv_to_target"]) < 1e-4 and min(solved["kl_to_target"]) >= 0.0


def test_output_piped_into_a_reader_that_stops_early_is_not_an_error():
    """`toybench list | head -1`: the closed pipe ends the command quietly with status 0."""
    import subprocess
    import sys

    command = [sys.executable, "-c", "import sys; from toybench.cli import main; sys.exit(main(['list']))"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()   # the reader is gone before the command prints anything
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0 and stderr == ""
