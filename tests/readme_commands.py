"""The two Quickstart commands of README.md: the first fenced shell block under the
"Quickstart" heading, line 1 installs and runs `toybench verify`, line 2 installs and runs
the tests. `.ci/run` executes line 2 from here, so README and CI cannot drift apart."""
import pathlib
import re
import sys

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def quickstart_commands(text: str) -> list[str]:
    section = re.split(r"^#+ .*Quickstart.*$", text, maxsplit=1, flags=re.M)[1]
    block = re.search(r"```(?:bash|sh|shell)\n(.*?)```", section, flags=re.S).group(1)
    return [line for line in block.strip().splitlines() if line.strip()]


if __name__ == "__main__":
    which = {"verify": 0, "test": 1}[sys.argv[1]]
    print(quickstart_commands(README.read_text())[which])
