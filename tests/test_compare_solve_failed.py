"""``tb.compare`` keeps going when ``solve`` cannot certify a loss: that row says "solve failed",
has NaN metrics and carries the SolveFailed message as its note; the other rows are unaffected."""
import math

import torch

import toybench as tb
import toybench.comparison as comparison


def test_compare_shows_solve_failed_as_a_row(monkeypatch):
    real = comparison.solve

    def flaky(loss, pairs, **kwargs):
        if loss.name == "ipo":
            raise tb.SolveFailed("no certificate below 1e-8 (test)", torch.zeros(1, 4, dtype=torch.float64),
                                 1.0, 1e-8, ["newton"])
        return real(loss, pairs, **kwargs)

    monkeypatch.setattr(comparison, "solve", flaky)
    frame = tb.compare(tb.claims.core.e1("ref"), ["dpo", "ipo"])
    dpo, ipo = frame.to_dict("records")
    assert ipo["case"] == "solve failed"
    assert ipo["note"] == "no certificate below 1e-8 (test)"
    for column in ("kl_to_pistar", "tv_to_pistar", "entropy", "win_rate", "value"):
        assert math.isnan(ipo[column]), column
        assert math.isfinite(dpo[column]), column
    assert dpo["case"] != "solve failed"
    assert "solve failed" in comparison.format_table(frame)
