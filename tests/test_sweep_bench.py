"""``toybench bench``: the byte model and exponent fit by hand, and a smoke run of the command."""
import math

import pytest

from toybench.cli import main
from toybench.sweep import bench


def test_byte_model_by_hand():
    # P=8, Y=32: nine passes over the 8·16·32 float32 pair layout, eight over the 8·32 float32 tables
    assert bench.bytes_per_run_step(8, 32) == 9 * 4 * 8 * 16 * 32 + 8 * 4 * 256    # 147,456 + 8,192 bytes


def test_exponent_fit_recovers_a_power_law():
    sizes = [8, 16, 32, 64]
    assert math.isclose(bench.exponent(sizes, [3e-6 * s**2 for s in sizes]), 2.0, rel_tol=1e-12)
    assert math.isclose(bench.exponent(sizes, [5e-3 * s**0.5 for s in sizes]), 0.5, rel_tol=1e-12)


def test_bench_quick_prints_every_figure(capsys):
    assert main(["bench", "--quick", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    for words in ("B=1 ", "B=32 ", "batched B=32 / loop", "copy bandwidth", "kB per run-step", "reaches",
                  "cost per run-step ∝ Y^", "cost per step ∝ B^", "this process got"):
        assert words in out, words


def test_bench_rejects_bad_steps_and_threads():
    with pytest.raises(ValueError, match="--steps"):
        bench.main(steps=0)
    with pytest.raises(ValueError, match="--threads"):
        bench.main(threads=0)
