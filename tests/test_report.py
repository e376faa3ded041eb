"""The shareable report: claims grouped by paper, figures embedded, the same claim count as
``toybench verify``; the browser test opens it in headless Chromium."""
import base64
import json
import pathlib
import re
import shutil
import subprocess

import pytest

import toybench as tb
from toybench import report
from toybench.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_paper_of_uses_the_arxiv_id():
    assert report.paper_of("Azar et al., arXiv 2310.12036, Fig. 1") == "arXiv 2310.12036"
    assert report.paper_of("Mitchell, cDPO note (2023); TRL") == "Mitchell"


def test_report_embeds_figures_and_counts_claims(tmp_path):
    assert main(["report", "--out", str(tmp_path), "--claims", "repro.did.*", "--only", "did",
                 "--figures", str(ROOT / "figures")]) == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    expected = len(tb.claims.select("repro.did.*"))
    assert page.count('<tr class="claim') == expected
    assert "arXiv 2505.23761" in page and "src=\"http" not in page
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(data) for data in embedded] == [(ROOT / "figures" / "did.png").read_bytes()]
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert markdown.count("| `repro.did.") == expected and "figures/did.png" in markdown
    assert (tmp_path / "figures" / "did.png").is_file()


def test_report_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["report", "--out", str(blocker / "r"), "--claims", "repro.did.*", "--only", "did"]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path, capsys):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("chromium is not installed (apt-get install -y chromium)")
    assert main(["report", "--out", str(tmp_path / "r"), "--figures", str(ROOT / "figures")]) == 0
    capsys.readouterr()
    assert main(["verify", "--json", "--no-progress"]) in (0, 1)
    verify_count = len(json.loads(capsys.readouterr().out))
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    probe = ("<script>window.addEventListener('load',()=>{const w=[...document.images].map(i=>i.naturalWidth);"
             "document.body.setAttribute('data-widths',w.join(','));"
             "document.body.setAttribute('data-rows',document.querySelectorAll('tr.claim').length)});</script>")
    (tmp_path / "probe.html").write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", (tmp_path / "probe.html").as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    widths = [int(w) for w in re.search(r'data-widths="([^"]*)"', dom).group(1).split(",")]
    assert len(widths) == len(tb.figures.FIGURES) and all(w > 0 for w in widths)
    assert int(re.search(r'data-rows="(\d+)"', dom).group(1)) == verify_count
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,900", (tmp_path / "r" / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000      # a blank page compresses to a few hundred bytes
