"""Shared fixtures: the worked instance E1 (docs/conventions.md) and small random problems."""
import numpy as np
import pytest
import torch

import toybench as tb

E1_REF = np.array([0.4, 0.3, 0.2, 0.1])
E1_REWARD = np.array([0.0, 0.5, 1.5, 3.0])
E1_PISTAR = np.array([0.105277, 0.130179, 0.235909, 0.528635])  # derived here, 6 digits


def e1_problem(pair_dist="uniform", lengths=None):
    """E1: one prompt, Y = 4, BT reward, π_ref = (0.4, 0.3, 0.2, 0.1)."""
    if isinstance(pair_dist, str) and pair_dist == "chain":
        pair_dist = torch.zeros(1, 4, 4, dtype=torch.float64)
        for a in range(3):
            pair_dist[0, a, a + 1] = 1.0
    space = tb.FlatSpace(4, lengths=lengths)
    return tb.Problem(space, torch.log(torch.tensor(E1_REF[None])), reward=torch.tensor(E1_REWARD[None]),
                      pair_dist=pair_dist)


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
