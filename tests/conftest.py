"""Shared fixtures: the worked instance E1 (docs/conventions.md) and small random problems."""
import numpy as np
import pytest
import torch

import toybench as tb

E1_REF = np.array(tb.problem.E1_REF)
E1_REWARD = np.array(tb.problem.E1_REWARD)
E1_PISTAR = np.array([0.105277, 0.130179, 0.235909, 0.528635])  # derived here, 6 digits


def e1_problem(pair_dist="uniform", lengths=None):
    """E1 (``toybench.problem.e1``): one prompt, Y = 4, BT reward, π_ref = (0.4, 0.3, 0.2, 0.1)."""
    return tb.problem.e1(pair_dist, lengths=lengths)


@pytest.fixture
def e1():
    return e1_problem()


# ------------------------------------------------------------------------ claims
_CLAIM_RESULTS: dict = {}


def claim_result(claim_id: str):
    """The registered claim's ``Result``, evaluated once per test session (claims take ≲ 1 s each)."""
    if claim_id not in _CLAIM_RESULTS:
        _CLAIM_RESULTS[claim_id] = tb.claims.evaluate(tb.claims.REGISTRY[claim_id])
    return _CLAIM_RESULTS[claim_id]


def assert_expected_verdicts(expected: dict) -> None:
    """Each claim id in ``expected`` is registered with that expected verdict (pinned here, so a
    changed expectation in the package fails a test)."""
    for claim_id, verdict in expected.items():
        assert tb.claims.REGISTRY[claim_id].expected == verdict, claim_id


# ------------------------------------------------------------------------ exact references
def newton_minimiser(objective, x0, max_steps=100):
    """Polish a local minimiser of a smooth float64 torch ``objective`` (a 1-D tensor → scalar) by
    Newton's method with the exact autograd Hessian and Armijo backtracking; the minimal-norm step
    (pseudo-inverse) ignores flat gauge directions such as a softmax's common shift.

    Returns (x, gradient norm, smallest non-gauge Hessian eigenvalue λ). Newton converges
    quadratically, so it stops at float64 rounding: the distance to the exact minimiser is about
    |∇f|/λ, which tests assert is ≤ 1e-10 before using the point as an exact reference (and so set
    their tolerance from the code under test, not from the reference)."""
    x = torch.as_tensor(x0, dtype=torch.float64).clone()

    def gradient(point):
        point = point.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(point), point)
        return grad

    for _ in range(max_steps):
        grad = gradient(x)
        hessian = torch.autograd.functional.hessian(objective, x)
        step = -torch.linalg.pinv(hessian, hermitian=True, rtol=1e-12) @ grad
        size, value, slope = 1.0, float(objective(x)), float(grad @ step)
        while size > 1e-12 and float(objective(x + size * step)) > value + 1e-4 * size * slope:
            size /= 2
        x = x + size * step
        if float((size * step).abs().max()) <= 1e-15 * (1 + float(x.abs().max())):
            break
    grad = gradient(x)
    eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(objective, x))
    curvature = float(eigenvalues[eigenvalues.abs() > 1e-12 * eigenvalues.abs().max()].min())
    return x.detach(), float(grad.norm()), curvature


def assert_exact_minimiser(grad_norm, curvature, bound=1e-10):
    """The Newton point is a strict local minimiser within ``bound`` of the exact one (|∇f|/λ)."""
    assert curvature > 0 and grad_norm / curvature <= bound, (grad_norm, curvature)
