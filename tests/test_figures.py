"""The figure gallery: deterministic bytes, labelled and captioned figures, one colour per loss,
clear errors that leave nothing half-written."""
import pathlib

import pytest

from toybench import experiments, figures
from toybench.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_reproduction_has_a_figure_and_a_one_line_caption():
    assert {item.experiment for item in figures.FIGURES.values()} >= set(experiments.NAMES)
    for item in figures.FIGURES.values():
        assert item.caption and "\n" not in item.caption and item.experiment in experiments.NAMES


def test_committed_gallery_is_complete():
    assert {p.stem for p in (ROOT / "figures").glob("*.png")} == set(figures.FIGURES)


def test_palette_gives_distinct_colours():
    assert len(set(figures.PALETTE.values())) == len(figures.PALETTE)


def test_two_runs_are_byte_identical(tmp_path):
    first = figures.write(tmp_path / "a", only="did")
    second = figures.write(tmp_path / "b", only="did")
    assert first[0].read_bytes() == second[0].read_bytes()
    assert first[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Software" not in first[0].read_bytes()


def test_figure_axes_are_labelled_with_legends():
    from matplotlib.figure import Figure
    fig = Figure()
    figures.FIGURES["did"].draw(fig)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None


def test_unknown_name_lists_valid_ones(capsys):
    assert main(["figures", "--only", "nope", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nope" in err and all(name in err for name in figures.FIGURES)
    with pytest.raises(ValueError, match="valid names"):
        figures.select("did,nope")


def test_unwritable_out_is_one_line_and_writes_nothing(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["figures", "--only", "did", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_failing_figure_leaves_nothing(tmp_path, monkeypatch):
    def broken(fig):
        raise RuntimeError("boom")
    monkeypatch.setitem(figures.FIGURES, "broken", figures.Figure("broken", "did", "fails", broken))
    with pytest.raises(RuntimeError):
        figures.write(tmp_path / "out", only="did,broken")
    assert not (tmp_path / "out").exists()
