"""Loss cards and docs/losses.md: every registered loss has a card, and the committed file is
what the registry gives (so the docs cannot drift from the code)."""
from pathlib import Path

import pytest
from conftest import E1_REF, E1_REWARD

import toybench.losses as L
from toybench.cards import card, document, main

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("name", L.names())
def test_every_registered_loss_has_a_full_card(name):
    cls = L.REGISTRY[name]
    text = card(name)
    assert text.startswith(f"## `{name}`")
    assert cls.citation in text and f"`{cls.target_kind}`" in text and f"`{cls.family}`" in text
    assert f"**Evidence**: {cls.evidence}" in text
    assert ("**Reconstruction**: yes" in text) == cls.reconstruction
    for field in L.fields(name):
        assert f"| `{field}` |" in text
    assert f"## `{name}`" in (DOCS / "losses.md").read_text(encoding="utf-8")


def test_dpo_card_states_formula_source_and_default():
    text = card("dpo")
    assert "L = −log σ(β·Δ)" in text
    assert "G1" in text and "2305.18290" in text and "Eq. 7" in text
    assert "| `beta` | `0.1` |" in text
    assert "(https://arxiv.org/abs/2305.18290)" in text


def test_reconstruction_is_flagged():
    assert "**Reconstruction**: yes" in card("minor_dpo")
    assert "**Reconstruction**: no" in card("dpo")


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown loss 'nope'.*dpo.*simpo"):
        card("nope")


def test_committed_losses_md_matches_the_registry():
    committed = (DOCS / "losses.md").read_text(encoding="utf-8")
    assert committed == document(), "regenerate with: python -m toybench.cards --write docs/losses.md"
    assert main(["--check", str(DOCS / "losses.md")]) == 0


def test_check_flags_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "losses.md"
    stale.write_text(document().replace("## `dpo`", "## `dpo_old`"), encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
    assert main(["--write", str(stale)]) == 0 and main(["--check", str(stale)]) == 0
    assert main(["nope"]) == 2
    assert "unknown loss" in capsys.readouterr().err


def test_docs_index_links_resolve():
    import re
    for page in ("README.md", "conventions.md", "losses.md"):
        text = (DOCS / page).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (DOCS / target).exists(), f"docs/{page} links to missing {target}"


def test_conventions_e1_numbers_match_an_independent_numpy_computation():
    """π*_β = π_ref·e^{r/β}/Z at β = 1 and its TV from π_ref, printed to 6 and 4 decimals."""
    import re

    import numpy as np
    text = (DOCS / "conventions.md").read_text(encoding="utf-8")
    printed = re.search(r"π\*_β = π_ref·e\^\{r/β\}/Z = \(([^)]*)\)", text).group(1)
    ref, reward = E1_REF, E1_REWARD
    pistar = ref * np.exp(reward) / np.sum(ref * np.exp(reward))
    np.testing.assert_allclose([float(v) for v in printed.split(",")], pistar, atol=5e-7)
    tv = float(re.search(r"TV\(π_ref, π\*_β\) = ([0-9]+\.[0-9]+)", text).group(1))
    assert abs(tv - 0.5 * np.abs(pistar - ref).sum()) < 5e-5


def test_card_quotes_the_sentence_about_the_optimum():
    from toybench.cards import target_sentence
    assert "**The optimum**: Target: π*_β = π_ref·e^{r/β}/Z for any connected pair law" in card("dpo")
    notes = "Some remark. ``mode``: a target option. The optimum is numeric. Another line."
    assert target_sentence(notes) == "The optimum is numeric."
    assert target_sentence("Nothing about it here.") == ""
