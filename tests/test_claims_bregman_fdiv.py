"""bpo/sba/fdpo/fpo/exo claims: registered ids and expectations, and spot checks of measured numbers
against independently derived E1 values (BFGS or LP in float64, cited in each claim)."""
import pytest
from conftest import claim_result, e1_problem

import toybench as tb
from toybench.claims import REGISTRY
from toybench.solve import solve

REFERENCE_IDS = ["bpo.lsif_as_printed", "sba.gradient_match", "sba.lambda_only_dynamics", "bpo.clip_plateau",
                 "fdpo.target", "fdpo.not_dpo_optimum", "fdpo.bpo_b1_normaliser", "fpo.exact_target",
                 "fpo.pair_closed_form", "fpo.pair_not_dpo_optimum", "fpo.code_eps_not_negligible",
                 "exo.pair_target", "exo.pair_recovers_pistar", "exo.list_exact", "exo.depends_on_mu"]


def test_reference_ids_registered():
    missing = [key for key in REFERENCE_IDS if key not in REGISTRY]
    assert not missing
    assert any(key.startswith("bpo.target_all_h") for key in REGISTRY)
    fkl = [REGISTRY[key] for key in REGISTRY if key.startswith("fdpo.fkl_more_entropy")]
    assert sorted(item.expected for item in fkl) == ["fails", "holds"]


# Independently derived E1 values (BPO arXiv 2505.19601; f-DPO arXiv 2309.16240), with their printed digits.
E1_VALUES = {"bpo.lsif_as_printed": (0.4645, 1e-4), "fdpo.bpo_b1_normaliser": (0.229, 1e-3),
             "fdpo.not_dpo_optimum": (0.073, 1e-3), "fdpo.fkl_more_entropy_beta1": (1.049 - 1.180, 2e-3),
             "fpo.pair_not_dpo_optimum": (0.356, 1e-3), "fpo.pair_small_eps_tempered": (1.3e-4, 1e-5),
             "fpo.code_eps_not_negligible": (abs(7.76 - 21.97) / 21.97, 1e-3),
             "exo.pair_recovers_pistar": (0.442, 1e-3), "exo.depends_on_mu": (0.0016, 1e-4)}


@pytest.mark.parametrize("claim_id", sorted(E1_VALUES))
def test_measured_matches_reference_numbers(claim_id):
    value, tolerance = E1_VALUES[claim_id]
    assert claim_result(claim_id).measured == pytest.approx(value, abs=tolerance)



def test_exo_pair_optimum_e1():
    """Derived (EXO, arXiv 2402.00856): EXO pair-mode optimum on E1, W_u, ε = 1e-3, β = 1 is
    (0.000459, 0.001821, 0.026594, 0.971126) (6 printed digits)."""
    found = solve(tb.losses.make("exo", beta=1.0, eps=1e-3), tb.population(e1_problem("uniform")))
    assert found.logp.exp()[0].tolist() == pytest.approx([0.000459, 0.001821, 0.026594, 0.971126], abs=6e-7)
