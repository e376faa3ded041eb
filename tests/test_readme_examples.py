"""Every Python example block of README.md runs as written, and every name the examples take
from toybench exists (so a rename cannot leave the README behind)."""
import ast
import re

import pytest
from readme_commands import README

import toybench as tb
import toybench.claims.registry as claim_registry
import toybench.losses.base as loss_registry

BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def used_names(code: str) -> set[str]:
    """Dotted names the code reads from toybench: ``tb.x.y`` attributes and ``from toybench... import``."""
    tree = ast.parse(code)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("toybench"):
            names.update(f"{node.module}:{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Attribute):
            chain, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "tb":
                names.add(".".join(reversed(chain)))
    return names


def resolve(name: str):
    import importlib
    if ":" in name:
        module, attr = name.split(":")
        return getattr(importlib.import_module(module), attr)
    value = tb
    for part in name.split("."):
        value = getattr(value, part)
    return value


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 6


def test_every_name_the_examples_use_exists():
    names = set().union(*(used_names(block) for block in BLOCKS))
    assert {"Problem.from_probs", "Tabular", "train", "solve", "compare", "losses.make",
            "toybench.claims:claim", "toybench.losses:register", "toybench.losses:MarginLoss"} <= names
    for name in sorted(names):
        resolve(name)  # AttributeError or ImportError when the README names something that is gone


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, capsys):
    """Each block in a fresh namespace; registries restored so README's own loss and claim do not
    leak into other tests."""
    losses, claims = dict(loss_registry.REGISTRY), dict(claim_registry.REGISTRY)
    try:
        exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {"__name__": "readme"})
    finally:
        loss_registry.REGISTRY.clear()
        loss_registry.REGISTRY.update(losses)
        claim_registry.REGISTRY.clear()
        claim_registry.REGISTRY.update(claims)
    assert capsys.readouterr().out.strip(), "every README example prints what it shows"
