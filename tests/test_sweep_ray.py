"""``--backend ray`` against a local Ray instance that the run starts and stops (slow: Ray's start-up
takes several seconds). Needs the ``ray`` extra (``pip install -e ".[ray]"``, which ``.ci/run`` installs
before the slow tests); without it the test fails on the import, it is never skipped."""
import sys

import pytest
from test_sweep import SPEC, budget_for, same_numbers

from toybench.sweep import driver


@pytest.mark.slow
def test_ray_backend_gives_the_numbers_of_one_local_pass(tmp_path):
    import ray

    from toybench.sweep.ray_backend import run_on_ray
    budget = budget_for(5)
    driver.run_sweep(SPEC, tmp_path / "local", max_memory=budget, log=lambda _: None)
    assert not ray.is_initialized()
    results = run_on_ray(SPEC, tmp_path / "ray", workers=2, device="cpu", max_memory=budget, log=lambda _: None)
    assert not ray.is_initialized()                       # the local instance it started is shut down
    assert len(results) == 2 and sum(r["trained"] for r in results) == 24
    same_numbers(tmp_path / "local", tmp_path / "ray")
    # a second run finds every run done
    again = run_on_ray(SPEC, tmp_path / "ray", workers=2, device="cpu", max_memory=budget, log=lambda _: None)
    assert sum(r["trained"] for r in again) == 0 and sum(r["skipped"] for r in again) == 24


def test_ray_backend_checks_the_spec_before_starting_ray(tmp_path):
    from toybench.sweep.ray_backend import run_on_ray
    with pytest.raises(ValueError, match="losses.dpo"):
        run_on_ray("[losses.dpo]\nbeta = -1.0\n", tmp_path / "out", log=lambda _: None)
    ray = sys.modules.get("ray")   # the spec is refused before Ray is imported or started
    assert (ray is None or not ray.is_initialized()) and not (tmp_path / "out").exists()
