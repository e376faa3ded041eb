"""The README's Quickstart block and loss table stay true to the code and to .ci/run."""
import re

from readme_commands import README, quickstart_commands

import toybench as tb

ROOT = README.parent


def test_quickstart_has_exactly_the_two_commands():
    install = 'pip install torch==2.13.0 && pip install -e ".[dev]"'
    verify, test = quickstart_commands(README.read_text())[:2]
    assert len(quickstart_commands(README.read_text())) == 2
    assert verify == f"{install} && toybench verify"
    assert test.startswith(install) and test.endswith("python -m pytest")


def test_ci_runs_the_readme_test_line_and_verify():
    script = (ROOT / ".ci" / "run").read_text()
    assert "readme_commands.py test" in script and "set -euo pipefail" in script
    assert "-eq 5" in script and "toybench verify" in script


def test_every_registered_loss_is_in_the_readme_table():
    table = README.read_text().split("<!-- loss-table")[1]
    listed = set(re.findall(r"^\| `([a-z_0-9]+)`", table, flags=re.M))
    assert set(tb.losses.names()) <= listed, sorted(set(tb.losses.names()) - listed)
    assert listed <= set(tb.losses.names()), sorted(listed - set(tb.losses.names()))


def test_pyproject_admits_the_cpu_torch():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"torch>=2.2"' in text and "[project.scripts]" in text and 'toybench = "toybench.cli:main"' in text
