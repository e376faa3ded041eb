"""Re-execute every teaching notebook in place, refreshing its committed outputs.

Usage (from the repository root): ``python notebooks/refresh.py [NAME ...]`` — all notebooks, or
only those whose file names are given. Each runs top to bottom in a fresh kernel (nbclient) with
the Agg backend; a failing notebook is reported and left unchanged.
"""
import os
import pathlib
import sys

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent


def refresh(path: pathlib.Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    nbformat.write(notebook, path)


def main(names) -> int:
    os.environ["MPLBACKEND"] = "Agg"
    paths = [HERE / name for name in names] if names else sorted(HERE.glob("*.ipynb"))
    missing = [str(p.name) for p in paths if not p.is_file()]
    if missing:
        print(f"refresh: unknown notebook(s) {', '.join(missing)}; have {', '.join(p.name for p in sorted(HERE.glob('*.ipynb')))}",
              file=sys.stderr)
        return 2
    failed = 0
    for path in paths:
        try:
            refresh(path)
            print(f"refreshed {path.name}")
        except Exception as err:   # report and go on: the other notebooks still refresh
            failed += 1
            print(f"FAILED {path.name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
