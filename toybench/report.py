"""A shareable report: one self-contained HTML page (figures embedded as base64 data URIs) and its
Markdown twin, with every claim's verdict grouped by paper (the arXiv id in its citation) and the
figure gallery with captions. ``toybench report`` writes both; it adds no math of its own.
"""
from __future__ import annotations

import base64
import html
import pathlib
import re
import tempfile

from . import figures as gallery

ARXIV = re.compile(r"arXiv[ :]*(\d{4}\.\d{4,5})")


def paper_of(citation: str) -> str:
    """The grouping key of a claim: its first arXiv id, else the citation's text before the first comma."""
    found = ARXIV.search(citation)
    return f"arXiv {found.group(1)}" if found else citation.split(",")[0].strip() or "uncited"


def group(results) -> dict[str, list]:
    """Claim results grouped by paper, papers in order of first appearance (results sorted by id)."""
    grouped: dict[str, list] = {}
    for result in results:
        grouped.setdefault(paper_of(result.citation), []).append(result)
    return grouped


def _figure_pngs(figure_dir, only):
    """{name: PNG bytes}: from ``figure_dir`` where present, else freshly rendered."""
    pngs = {}
    with tempfile.TemporaryDirectory() as scratch:
        for item in gallery.select(only):
            path = pathlib.Path(figure_dir) / f"{item.name}.png" if figure_dir else None
            if path is None or not path.is_file():
                path = pathlib.Path(scratch) / f"{item.name}.png"
                gallery.render(item, path)
            pngs[item.name] = path.read_bytes()
    return pngs


def _summary(results) -> str:
    unexpected = sum(not r.as_expected for r in results)
    return (f"{len(results)} claims, {len(results) - unexpected} as expected, {unexpected} unexpected "
            f"({sum(r.expected == 'fails' for r in results)} expected to fail)")


def to_html(results, pngs) -> str:
    """The HTML page (no external resources)."""
    rows = []
    for paper, items in group(results).items():
        rows.append(f'<tr class="paper"><th colspan="6">{html.escape(paper)} ({len(items)})</th></tr>')
        for r in items:
            ok = "yes" if r.as_expected else "NO"
            rows.append(f'<tr class="claim {"ok" if r.as_expected else "bad"}"><td>{html.escape(r.id)}</td>'
                        f"<td>{html.escape(r.statement)}</td><td>{r.measured:.4g} {html.escape(r.comparison)} "
                        f"{r.tolerance:.3g}</td><td>{r.verdict}</td><td>{r.expected}</td><td>{ok}</td></tr>")
    figs = [f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
            f"<figcaption><b>{name}</b>: {html.escape(gallery.FIGURES[name].caption)}</figcaption></figure>"
            for name, data in pngs.items()]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}tr.paper th{background:#eef}"
             "tr.bad{background:#fdd}img{max-width:100%}figure{margin:1em 0}")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>toybench report</title>"
            f"<style>{style}</style></head><body><h1>toybench report</h1>"
            f'<p id="summary">{html.escape(_summary(results))}</p><h2>Claims by paper</h2>'
            "<table><tr><th>claim</th><th>statement</th><th>measured vs tolerance</th><th>verdict</th>"
            f"<th>expected</th><th>ok</th></tr>{''.join(rows)}</table><h2>Figures</h2>{''.join(figs)}</body></html>\n")


def to_markdown(results, pngs) -> str:
    """The Markdown twin; figures are referenced as files ``figures/<name>.png`` beside it."""
    lines = ["# toybench report", "", _summary(results), "", "## Claims by paper", ""]
    for paper, items in group(results).items():
        lines += [f"### {paper} ({len(items)})", "", "| claim | measured | tolerance | verdict | expected |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{r.id}` | {r.measured:.4g} | {r.comparison} {r.tolerance:.3g} | {r.verdict} | {r.expected} |"
                  for r in items]
        lines.append("")
    lines += ["## Figures", ""]
    lines += [f"![{name}](figures/{name}.png)\n\n*{gallery.FIGURES[name].caption}*\n" for name in pngs]
    return "\n".join(lines)


def write(out="report", pattern: str = "*", figure_dir="figures", only: str | None = None) -> list[pathlib.Path]:
    """Run the claims matching ``pattern`` and write ``out/report.html``, ``out/report.md`` and
    ``out/figures/*.png``; everything is staged in a temporary folder first (all or nothing)."""
    from . import claims
    out = gallery.check_output(out)
    results = claims.run(pattern)
    pngs = _figure_pngs(figure_dir, only)
    with tempfile.TemporaryDirectory(prefix="toybench-report-") as scratch:
        staging = pathlib.Path(scratch)
        (staging / "figures").mkdir()
        for name, data in pngs.items():
            (staging / "figures" / f"{name}.png").write_bytes(data)
        (staging / "report.html").write_text(to_html(results, pngs), encoding="utf-8")
        (staging / "report.md").write_text(to_markdown(results, pngs), encoding="utf-8")
        names = [f"figures/{name}.png" for name in pngs] + ["report.md", "report.html"]
        gallery.install(staging, out, names)
    return [out / "report.html", out / "report.md"]
