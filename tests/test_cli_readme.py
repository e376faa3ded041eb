"""Every command of README.md's "From the command line" blocks runs (in-process, `train` capped at
100 steps) and exits 0."""
import re
import shlex

import pytest
from readme_commands import README

from toybench.cli import main

MAX_STEPS = 100


def cli_examples(text: str) -> list[str]:
    """The shell lines of the fenced bash blocks between "From the command line" and the next heading,
    install lines left out."""
    section = re.split(r"^From the command line.*$", text, maxsplit=1, flags=re.M)[1]
    section = re.split(r"^#+ ", section, maxsplit=1, flags=re.M)[0]
    blocks = re.findall(r"```(?:bash|sh|shell)\n(.*?)```", section, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith(("pip ", "#"))]


def argv_of(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    prefix = 3 if words[:3] == ["python", "-m", "toybench"] else 1
    assert words[0] == "toybench" or prefix == 3, f"not a toybench command: {line}"
    argv = words[prefix:]
    if argv[0] == "train":
        if "--steps" in argv:
            at = argv.index("--steps") + 1
            argv[at] = str(min(int(argv[at]), MAX_STEPS))
        else:
            argv += ["--steps", str(MAX_STEPS)]
    return argv


def test_the_readme_shows_command_line_examples():
    lines = cli_examples(README.read_text())
    assert len(lines) >= 5 and {argv_of(line)[0] for line in lines} >= {"list", "compare", "train", "verify"}


@pytest.mark.parametrize("line", cli_examples(README.read_text()))
def test_readme_command_runs(line, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)   # output files (--plot curves.png) land here
    assert main(argv_of(line)) == 0, capsys.readouterr().err
