"""Bad command lines: one line on stderr, exit status 2, never a traceback; output paths are
checked before any work."""
import sys

import pytest

import toybench as tb
from toybench.cli import main


@pytest.mark.parametrize("argv, message", [
    (["train", "--loss", "dpo:beta=-1"], "beta"),
    (["train", "--samples", "5", "--target", "solve"], "finite minimiser"),
    (["train", "--loss", "dpo:gamma=1"], "accepted fields"),
    (["train", "--noise", "0.7"], "noise"),
    (["compare", "nosuchloss"], "valid names: alpha_dpo, alpha_po"),
    (["compare", "dpo:beta="], "'beta' in 'dpo:beta=' has no value"),
    (["compare", "dpo:=1"], "write key=value"),
    (["compare", "dpo:beta=1,beta=2"], "'beta' is given twice"),
    (["compare", "simpo", "--lengths", "-1,1,1,1"], "lengths must be finite and positive"),
    (["compare", "da_dpo", "--problem", "random", "--preference", "general"], "pass --scores"),
    (["train", "--loss", "madpo", "--problem", "random", "--preference", "general"], "pass --scores"),
    (["compare", "ddo", "--problem", "random", "--preference", "general"], "pass --scores"),
    (["compare", "fpo:mode=exact", "--problem", "random", "--preference", "general"], "--preference bt"),
    (["compare", "dpo", "--scores", "1,2"], "P·Y = 4 numbers"),
    (["compare", "simpo", "--lengths", "1,2"], "--lengths needs 4 numbers"),
    (["compare", "simpo", "--lengths", "1,x,2,3"], "comma-separated numbers"),
    (["compare", "orpo", "--beta", "1"], "--beta applies to losses with a beta field"),
    (["compare", "dpo", "--eps", "0.1"], "--eps applies to losses with a eps field"),
    (["compare", "dpo", "--responses", "3"], "only for --problem random"),
    (["compare", "dpo", "--problem", "random", "--vocab", "3"], "only for --problem sequence"),
    (["compare", "dpo", "--problem", "sequence", "--lengths", "1,2"], "not for --problem sequence"),
    (["compare", "dpo", "--beta", "0.1,x"], "argument --beta"),
    (["compare", "ddo", "--noise", "0.1"], "no labels to flip"),
    (["train", "--runs", "0"], "--runs must be >= 1"),
    (["compare", "dpo", "--list-size", "3"], "'dpo' is not a list loss"),
    (["compare", "plackett_luce", "--list-size", "9"], "list size in 2..4"),
    (["compare", "plackett_luce", "--candidates", "ref"], "describe the lists of --list-size"),
    (["compare", "plackett_luce", "--list-size", "3", "--noise", "0.1"], "no label noise"),
    (["train", "--nosuchoption"], "unrecognized arguments"),
    (["train", "--optimizer", "lbfgs"], "invalid choice"),
    ([], "required: COMMAND"),
])
def test_bad_input_is_one_line_with_status_2(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err and captured.out == ""


TRAIN, COMPARE = ["train", "--steps", "100000000"], ["compare", "dpo"]


@pytest.mark.parametrize("command, flag", [(TRAIN, "--plot"), (TRAIN, "--json-out"), (COMPARE, "--csv"),
                                           (COMPARE, "--json-out"), (["verify"], "--json-out"),
                                           (["list"], "--json-out")])
def test_output_paths_are_checked_before_any_work(command, flag, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tb.comparison, "solve", _no_work)
    monkeypatch.setattr(sys.modules["toybench.train"], "train", _no_work)
    monkeypatch.setattr(tb.claims, "run", _no_work)
    assert main([*command, flag, str(tmp_path / "missing" / "out.file")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*command, flag, str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def _no_work(*args, **kwargs):
    raise AssertionError("work started before the output path was checked")


def test_a_bug_is_one_line_with_status_1_and_its_traceback_on_request(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")
    monkeypatch.setattr(tb.comparison, "compare", broken)
    assert main(["compare", "dpo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: boom second line" in err
    monkeypatch.setenv("TOYBENCH_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["compare", "dpo"])
