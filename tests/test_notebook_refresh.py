"""notebooks/refresh.py on copies in a temporary folder: outputs written, the notebook valid, a
failing notebook left unchanged, an unknown name refused."""
import os
import pathlib
import shutil
import subprocess
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "notebooks" / "refresh.py"
SMALL = ROOT / "notebooks" / "05_rankings_and_nash.ipynb"


def _refresh(*names, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, names)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_refresh_writes_outputs_into_a_copy_and_keeps_it_valid(tmp_path):
    copy, original = tmp_path / SMALL.name, SMALL.read_bytes()
    shutil.copy(SMALL, copy)
    notebook = nbformat.read(copy, as_version=4)
    for cell in notebook.cells:                        # start from no outputs, whatever is committed
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(notebook, copy)
    done = _refresh(copy)
    assert done.returncode == 0, done.stderr
    assert f"refreshed {SMALL.name}" in done.stdout
    refreshed = nbformat.read(copy, as_version=4)
    nbformat.validate(refreshed)
    code = [cell for cell in refreshed.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert any(cell.outputs for cell in code)
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert [cell.source for cell in refreshed.cells] == [cell.source for cell in notebook.cells]
    assert SMALL.read_bytes() == original               # only the copy was refreshed


def test_refresh_leaves_a_failing_notebook_unchanged(tmp_path):
    broken = tmp_path / "broken.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise ValueError('boom')")])
    nbformat.write(notebook, broken)
    before = broken.read_bytes()
    done = _refresh(broken)
    assert done.returncode == 1
    assert "FAILED broken.ipynb" in done.stderr
    assert broken.read_bytes() == before


def test_refresh_refuses_an_unknown_notebook(tmp_path):
    done = _refresh(tmp_path / "nope.ipynb")
    assert done.returncode == 2
    assert "unknown notebook(s)" in done.stderr and "01_quickstart.ipynb" in done.stderr
