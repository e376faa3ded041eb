"""``plain_margin`` (the loss is φ(β·Δ) of the reference margin Δ = g_w − g_l, so training's cell grid
needs only φ′) is declared on each loss; here the declaration is checked against the formula."""
import pytest
import torch

import toybench as tb
from toybench.losses.base import MarginLoss

VARIANTS = [(name, {}) for name in tb.losses.names()] + [
    ("hinge", dict(reference_free=True)), ("ipo", dict(length_normalized=True)), ("bpo", dict(h="ba", lam=2.0)),
]


def behaves_as_plain_margin(loss) -> bool:
    """Value φ(β·Δ) and gradient (β·φ′, −β·φ′) on random inputs, Δ the reference margin, no extra inputs."""
    if not isinstance(loss, MarginLoss) or loss.needs:
        return False
    gen = torch.Generator().manual_seed(0)
    chosen, rejected, ref_chosen, ref_rejected = torch.randn(4, 1, 7, generator=gen, dtype=torch.float64)
    delta = (chosen - ref_chosen) - (rejected - ref_rejected)
    value = loss(chosen, rejected, ref_chosen, ref_rejected)
    if not torch.allclose(value, loss.phi(loss.beta * delta), rtol=1e-12, atol=1e-14):
        return False
    slope = loss.beta * loss.dphi(loss.beta * delta)
    grad_w, grad_l = loss.input_grads(chosen, rejected, ref_chosen, ref_rejected)
    return torch.allclose(grad_w, slope, rtol=1e-12, atol=1e-14) and torch.allclose(grad_l, -slope, rtol=1e-12,
                                                                                     atol=1e-14)


@pytest.mark.parametrize("name, kwargs", VARIANTS, ids=[f"{n}{k or ''}" for n, k in VARIANTS])
def test_plain_margin_declaration_matches_the_formula(name, kwargs):
    loss = tb.losses.make(name, **kwargs)
    declared = bool(loss.plain_margin) and not loss.needs
    if declared:   # a wrong declaration would train on the wrong gradient; a missing one is only slower
        assert behaves_as_plain_margin(loss)


def test_the_plain_margin_losses_take_the_fast_path():
    """The losses the README names as needing only φ′ on the grid."""
    declared = {name for name in tb.losses.names() if tb.losses.make(name).plain_margin}
    assert {"dpo", "ipo", "cdpo", "rdpo", "hinge", "bpo", "sba"} <= declared
