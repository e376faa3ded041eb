"""The repository stands alone: no docstring, comment, notebook, test or document cites a file
users do not get (design notes, reference pages, "Contract N"). Papers are cited by arXiv id and
the repository's own docs/ files; a section sign § must belong to a paper citation (an arXiv id
shortly before it)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = [ROOT / "README.md", *(p for d in ("toybench", "tests", "notebooks", "docs", "benchmarks")
                                 for p in sorted((ROOT / d).rglob("*"))
                                 if p.suffix in {".py", ".ipynb", ".md"})]
BANNED = re.compile("|".join([
    r"DESIGN\b", r"DESIGN\.md", r"reproductions\.md", r"\bstyle\.md", r"(?<![/\[(\"])\blosses\.md",
    r"\b[Rr]eference (§|losses|reproductions|notes|instance|G\d)", r"\.\./shared", r"/work/shared",
    r"\bContracts? \d", r"the reference'?s? (gives|prints|found|rounds|E1|numbers|values|labels)",
]))
SECTION = re.compile(r"§\s?\d")


def offending_lines(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        if BANNED.search(line):
            found.append(line.strip())
        for m in SECTION.finditer(line):
            if "arXiv" not in line[max(0, m.start() - 80):m.start()]:
                found.append(line.strip())
    return found


def test_the_scan_catches_what_it_should():
    assert offending_lines("see DESIGN.md, Contract 2") and offending_lines("(reference §2.6)")
    assert offending_lines("values of losses.md §0.4") and offending_lines("the reference prints 0.236")
    assert not offending_lines("Gorbatovski et al., arXiv 2502.01237, §2.4; see docs/losses.md")


def test_no_citation_of_files_outside_the_repository():
    me = Path(__file__).resolve()
    bad = {str(p.relative_to(ROOT)): lines for p in SCANNED if p.resolve() != me
           for lines in [offending_lines(p.read_text(encoding="utf-8"))] if lines}
    assert not bad, f"cite papers (arXiv id, equation) or docs/ instead: {bad}"
