"""Every registered loss runs from `toybench compare` and `toybench train` with the command line's
defaults: lengths, score gaps, win probabilities and DDO's records come from the problem; the
token-level losses run on ``--problem sequence``."""
import json

import pytest

import toybench as tb
from toybench.cli import main


@pytest.mark.parametrize("name", tb.losses.names())
def test_every_loss_runs_through_compare_and_train(name, capsys):
    token_level = isinstance(tb.losses.make(name), tb.losses.token.TokenLoss)
    problem = ["--problem", "sequence"] if token_level else []
    assert main(["compare", name, "--json", *problem]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["loss"].split(":")[0] == name
    assert row["beta"] == tb.losses.fields(name).get("beta")   # the library's default β, shown
    assert all(row.get(key) is None or row[key] >= 0 for key in ("kl_to_pistar", "kl_from_pistar"))
    assert main(["train", "--loss", name, "--steps", "5", "--json", *problem]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["loss"] == name and result["history"]["step"][-1] == 5
    assert result["final"]["loss"][0] is not None   # a finite objective after 5 steps


def test_a_token_level_loss_on_a_flat_problem_names_the_flag(capsys):
    assert main(["compare", "token_dpo"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SequenceSpace" in err and "--problem sequence" in err
