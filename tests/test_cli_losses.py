"""Every registered loss runs from `toybench compare` and `toybench train` with the command line's
defaults: lengths, score gaps, win probabilities and DDO's records come from the problem."""
import json

import pytest

import toybench as tb
from toybench.cli import main


@pytest.mark.parametrize("name", tb.losses.names())
def test_every_loss_runs_through_compare_and_train(name, capsys):
    assert main(["compare", name, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["loss"].split(":")[0] == name
    assert row["beta"] == tb.losses.fields(name).get("beta")   # the library's default β, shown
    assert all(row.get(key) is None or row[key] >= 0 for key in ("kl_to_pistar", "kl_from_pistar"))
    assert main(["train", "--loss", name, "--steps", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["loss"] == name and result["history"]["step"][-1] == 5
    assert result["final"]["loss"][0] is not None   # a finite objective after 5 steps
