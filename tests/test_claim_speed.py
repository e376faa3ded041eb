"""What keeps claims fast: one thread for tiny tensor programs, no heavy lazy imports, cached runs.

Each test checks that the faster path computes the same mathematics as an independent reference
(torch.broadcast_shapes, a closed-form second derivative, the uncached experiment) and that the
thread settings are restored.
"""
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

import toybench as tb
from toybench._numerics import exp_difference, one_blas_thread, single_threaded
from toybench.claims import registry
from toybench.experiments import selfplay, three_d


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_single_threaded_sets_one_thread_and_restores_even_on_error():
    before, blas_before = torch.get_num_threads(), _blas_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with single_threaded():
            assert torch.get_num_threads() == 1
            assert _blas_threads() and set(_blas_threads()) == {1}
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before and _blas_threads() == blas_before
    with one_blas_thread():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == blas_before


def test_claims_measure_single_threaded_and_leave_threads_alone():
    seen = []
    registry.REGISTRY["speed_test.threads"] = registry.Claim(
        "speed_test.threads", "test", "none", lambda: seen.append(torch.get_num_threads()) or 0.0, "<=", 0.0, "holds")
    try:
        before = torch.get_num_threads()
        (result,) = registry.run("speed_test.threads")
    finally:
        del registry.REGISTRY["speed_test.threads"]
    assert result.verdict == "holds" and seen == [1] and torch.get_num_threads() == before


@pytest.mark.parametrize("lead_a, lead_b", [((), (5,)), ((3,), (3,)), ((3,), (1,)), ((1,), (4,)), ((3,), (4,)),
                                            ((2, 3), (3,)), ((2, 3), (2, 1)), ((2, 3), (3, 2)), ((5, 1), (1, 5)),
                                            ((2, 1, 3), (4, 1))])
def test_metric_shape_check_agrees_with_torch_broadcast_shapes(lead_a, lead_b):
    try:
        torch.broadcast_shapes(lead_a, lead_b)
        compatible = True
    except RuntimeError:
        compatible = False
    p = torch.log_softmax(torch.randn(*lead_a, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), -1)
    q = torch.log_softmax(torch.randn(*lead_b, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)), -1)
    if compatible:
        assert tb.metrics.tv(p, q).shape == torch.broadcast_shapes(lead_a, lead_b)
    else:
        with pytest.raises(ValueError, match="broadcastable leading axes"):
            tb.metrics.tv(p, q)


def test_exp_difference_second_derivative_is_the_closed_form():
    # d²/dx² e^s(e^x − e^y) = e^{s+x}, d²/dy² = −e^{s+y}, mixed 0 (apart and tied elements)
    x = torch.tensor([3.0, 0.0, -2.0, 1.5], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0, 2.0, -2.5, 1.5], dtype=torch.float64, requires_grad=True)
    grad_x, grad_y = torch.autograd.grad(exp_difference(x, y, math.log(0.5)).sum(), (x, y), create_graph=True)
    xx, xy = torch.autograd.grad(grad_x.sum(), (x, y), retain_graph=True, materialize_grads=True)
    yy, = torch.autograd.grad(grad_y.sum(), y)
    np.testing.assert_allclose(xx.detach().numpy(), 0.5 * np.exp(x.detach().numpy()), rtol=1e-14)
    np.testing.assert_allclose(yy.detach().numpy(), -0.5 * np.exp(y.detach().numpy()), rtol=1e-14)
    assert float(xy.abs().max()) <= 1e-14 * 0.5 * math.exp(3.0)    # 0 up to rounding of the largest term


def test_a_metric_and_a_second_order_solve_import_neither_sympy_nor_dynamo():
    # both lazy imports cost seconds on first use (torch 2.13): broadcast_shapes pulls in sympy and
    # abs's double backward torch._dynamo; alpha_po's solve polishes with second derivatives
    code = ("import sys, torch, toybench as tb\n"
            "from toybench.claims.core import e1\n"
            "prob = e1('uniform')\n"
            "sol = tb.solve(tb.losses.make('alpha_po', beta=1.0, alpha=0.3), tb.population(prob))\n"
            "tb.metrics.tv(sol.logp, prob.ref_logp)\n"
            "print(sorted(m for m in ('sympy', 'torch._dynamo') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cached_experiments_equal_a_fresh_run_and_hand_out_copies():
    first = three_d.run(seeds=2, epochs=3, every=1)
    first["rejected_logp_change"].fill_(7.0)                   # a caller's change must not reach the cache
    again, fresh = three_d.run(seeds=2, epochs=3, every=1), three_d._run.__wrapped__(2, 3, 1e-3, 0.1, 1)
    assert again.keys() == fresh.keys()
    for name in fresh:
        torch.testing.assert_close(again[name], fresh[name], rtol=0, atol=0)
    steps, last, average = selfplay.hedge(0.1, 50, record_every=10)
    last.fill_(7.0)
    for got, expected in zip(selfplay.hedge(0.1, 50, record_every=10), selfplay._hedge.__wrapped__(0.1, 50, 10),
                             strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
