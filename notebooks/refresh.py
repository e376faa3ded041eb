"""Re-execute every teaching notebook in place, refreshing its committed outputs.

Usage (from the repository root): ``python notebooks/refresh.py [NAME ...]`` — all notebooks, or
only those given, each a file name in notebooks/ or a path to a notebook elsewhere. Each runs top
to bottom in a fresh kernel (nbclient) with the Agg backend, in its own folder; a failing
notebook is reported and left unchanged. Exit status 0, 1 when a notebook failed, 2 for an unknown
name.
"""
import os
import pathlib
import sys

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent


def refresh(path: pathlib.Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, path)


def _locate(name: str) -> pathlib.Path:
    """A notebook in notebooks/ by file name, else ``name`` as a path."""
    inside = HERE / name
    return inside if inside.is_file() else pathlib.Path(name).resolve()


def main(names) -> int:
    os.environ["MPLBACKEND"] = "Agg"
    paths = [_locate(name) for name in names] if names else sorted(HERE.glob("*.ipynb"))
    missing = [name for name, path in zip(names, paths, strict=False) if not path.is_file()]   # names may be empty
    if missing:
        print(f"refresh: unknown notebook(s) {', '.join(missing)}; have {', '.join(p.name for p in sorted(HERE.glob('*.ipynb')))} "
              "(or give a path to a notebook)",
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
