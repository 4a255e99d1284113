"""``report.html``: one self-contained page (PNG plots inline as base64, no external files)."""

from __future__ import annotations

import base64
import html
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px}
th{background:#f3f3f3}td.n{text-align:right;font-family:monospace}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}img{max-width:100%}
.note{color:#666}
"""


def _f(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:+.1%}"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_report(
    metrics: dict[str, Any],
    images: dict[str, tuple[str, bytes | None]],
    best_yaml: str | None,
    top_rows: list[dict[str, Any]],
) -> str:
    """The page. ``images``: key -> (caption, PNG or None when the run has no such plot)."""
    rep = metrics.get("report") or {}
    rsrc = rep.get("sources") or {}
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>mergekit-evo run ({html.escape(str(metrics.get('mode')))})</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>mergekit-evo run <small>({html.escape(str(metrics.get('mode')))})</small></h1>",
        "<table><tr><th>model</th><th>search split (fitness)</th><th>report split</th></tr>",
    ]
    for name, v in (metrics.get("baseline_fitness") or {}).items():
        if name != "best":
            r = (rsrc.get(name) or {}).get("score")
            out.append(f"<tr><td>source {html.escape(name)}</td><td class=n>{_f(v)}</td>"
                       f"<td class=n>{_f(r)}</td></tr>")  # fmt: skip
    if metrics.get("start_fitness") is not None:
        out.append(f"<tr><td>start point (trial 0)</td><td class=n>{_f(metrics['start_fitness'])}"
                   "</td><td class=n>-</td></tr>")  # fmt: skip
    for label, key in (("PS best", "ps_best_fitness"), ("DFS best", "dfs_best_fitness")):
        if metrics.get(key) is not None:
            out.append(f"<tr><td>{label}</td><td class=n>{_f(metrics[key])}</td>"
                       "<td class=n>-</td></tr>")  # fmt: skip
    champ_r = (rep.get("champion") or {}).get("score")
    out += [
        f"<tr><th>champion (trial {_f(metrics.get('champion_trial'))})</th>"
        f"<th class=n>{_f(metrics.get('champion_fitness'))}</th>"
        f"<th class=n>{_f(champ_r)}</th></tr>",
        f"<tr><td>gain over the best source</td><td class=n>"
        f"{_pct(metrics.get('fitness_improvement'))}</td>"
        f"<td class=n>{_pct(rep.get('improvement'))}</td></tr>",
        f"<tr><td>gain over the start point</td><td class=n>"
        f"{_pct(metrics.get('gain_over_start'))}</td><td class=n>-</td></tr></table>",
        "<p class=note>Trial 0 is the start point: the recipe itself for a search started "
        "with <code>--from-recipe</code>.</p><ul>",
    ]
    for stage, why in (metrics.get("stop_reason") or {}).items():
        out.append(f"<li>{html.escape(stage)} stopped: {html.escape(str(why))}</li>")
    out.append("</ul>")
    for caption, png in images.values():
        out.append(f"<h2>{html.escape(caption)}</h2>")
        out.append(_img(png, caption) if png else "<p class=note>(not in this run)</p>")
    if top_rows:
        out.append("<h2>Top trials</h2><table><tr><th>stage</th><th>trial</th><th>fitness</th>"
                   "<th>YAML</th></tr>")  # fmt: skip
        for r in top_rows:
            out.append(f"<tr><td>{html.escape(str(r['stage']))}</td><td class=n>{r['number']}</td>"
                       f"<td class=n>{_f(float(r['fitness']))}</td>"
                       f"<td>{html.escape(str(r.get('yaml', '')))}</td></tr>")  # fmt: skip
        out.append("</table>")
    if best_yaml:
        out += ["<h2>Champion recipe (best.yml)</h2>", f"<pre>{html.escape(best_yaml)}</pre>"]
    out.append("</body></html>")
    return "\n".join(out) + "\n"
