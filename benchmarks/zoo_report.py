"""The zoo table's verdicts and text: issue 13's goals per zoo and over every zoo, the
comparisons the issue asks to report, and the Markdown of ``docs/zoo.md`` / ``docs/zoo-gpu.md``.

Kept apart from ``zoo_table.py`` (which runs the searches and scores the rows) so the goals can
be read, tested and re-rendered (``zoo_table.py --render``) without torch or a zoo.
"""

from __future__ import annotations

import json
from typing import Any

LABELS = {
    "ps": "PS champion",
    "dfs": "DFS champion",
    "dfs_cma": "DFS champion, CMA-ES alone (polish_share 0)",
    "ps_dfs": "PS+DFS champion",
}
METRIC = "exact_match,flexible-extract"
SCALES = (0.5, 1.0, 1.5, 2.0)  # the single-source control's scales
EPS = 1e-9  # accuracies are fractions of questions: 0.58 - 0.55 must count as 3 points


SEARCHED = ("ps", "dfs", "dfs_cma", "ps_dfs")


def goals(
    rows: dict[str, dict[str, Any]], sources: list[str], design: str = "paths"
) -> list[dict[str, Any]]:
    """The goals of the zoo's issue on one zoo's held-out split, each with the numbers it was
    decided on: issue 18's for design ``real-base``, else issue 13's."""
    if design == "real-base":
        return real_base_goals(rows, sources)
    h = {k: v["heldout"] for k, v in rows.items() if v.get("heldout") is not None}
    best_src = max(h[k] for k in sources)
    controls = max(v for k, v in h.items() if k.startswith("control:"))
    out = []
    if "ps" in h:
        out.append(
            {
                "goal": "PS champion >= 2x best source and >= +30 points over every control",
                "holds": h["ps"] >= 2 * best_src - EPS and h["ps"] - controls >= 0.30 - EPS,
                "numbers": f"PS {h['ps']:.4f}, best source {best_src:.4f}, "
                f"best control {controls:.4f}",
            }
        )
    if "dfs" in h:
        out.append(
            {
                "goal": "DFS champion >= best source + 10 points",
                "holds": h["dfs"] - best_src >= 0.10 - EPS,
                "numbers": f"DFS {h['dfs']:.4f}, best source {best_src:.4f}",
            }
        )
    if "ps_dfs" in h and "ps" in h:
        out.append(
            {
                "goal": "PS+DFS champion >= PS champion + 3 points",
                "holds": h["ps_dfs"] - h["ps"] >= 0.03 - EPS,
                "numbers": f"PS+DFS {h['ps_dfs']:.4f}, PS {h['ps']:.4f}",
            }
        )
    return out


def real_base_goals(rows: dict[str, dict[str, Any]], sources: list[str]) -> list[dict[str, Any]]:
    """Issue 18's goals (a zoo on a real pretrained base): the best searched champion >= the
    best source + 10 points and >= the best hand merge + 3; DFS >= the best source + 5;
    PS+DFS >= max(PS, DFS). Hand merges: the equal-weight one and the grid's pick (``hand*``)."""
    h = {k: v["heldout"] for k, v in rows.items() if v.get("heldout") is not None}
    best_src = max(h[k] for k in sources)
    hands = {k: v for k, v in h.items() if k == "hand" or k.startswith("hand:")}
    out = []
    searched = {k: h[k] for k in SEARCHED if k in h}
    if searched and hands:
        top = max(searched, key=lambda k: searched[k])
        best_hand = max(hands.values())
        out.append(
            {
                "goal": "best searched champion >= best source + 10 points and >= best hand "
                "merge + 3 points",
                "holds": searched[top] - best_src >= 0.10 - EPS
                and searched[top] - best_hand >= 0.03 - EPS,
                "numbers": f"{LABELS[top]} {searched[top]:.4f}, best source {best_src:.4f}, "
                f"best hand merge {best_hand:.4f}",
            }
        )
    if "dfs" in h:
        out.append(
            {
                "goal": "DFS champion >= best source + 5 points",
                "holds": h["dfs"] - best_src >= 0.05 - EPS,
                "numbers": f"DFS {h['dfs']:.4f}, best source {best_src:.4f}",
            }
        )
    if "ps_dfs" in h and ("ps" in h or "dfs" in h):
        ref = max(h.get("ps", 0.0), h.get("dfs", 0.0))
        out.append(
            {
                "goal": "PS+DFS champion >= max(PS, DFS)",
                "holds": h["ps_dfs"] >= ref - EPS,
                "numbers": f"PS+DFS {h['ps_dfs']:.4f}, PS {h.get('ps', float('nan')):.4f}, "
                f"DFS {h.get('dfs', float('nan')):.4f}",
            }
        )
    return out


def comparisons(rows: dict[str, dict[str, Any]]) -> list[str]:
    """What the issue asks to report beside the goals (no threshold)."""
    h = {k: v["heldout"] for k, v in rows.items() if v.get("heldout") is not None}
    out = []
    if "dfs" in h and "dfs_cma" in h:
        out.append(
            f"DFS polish {100 * h['dfs']:.2f} vs CMA-ES alone {100 * h['dfs_cma']:.2f} "
            f"(evaluations {rows['dfs'].get('evaluations')} vs "
            f"{rows['dfs_cma'].get('evaluations')})"
        )
    if "dfs" in h and "dfs_start" in h:
        out.append(
            f"DFS champion {100 * h['dfs']:.2f} vs its start point {100 * h['dfs_start']:.2f}"
        )
    if "ps" in h and "hand" in h:
        out.append(
            f"PS champion {100 * h['ps']:.2f} vs equal-weight hand merge {100 * h['hand']:.2f}"
        )
    return out


def combine_goals(zoos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A goal holds when it holds on every zoo; the numbers of each zoo are kept."""
    out: dict[str, dict[str, Any]] = {}
    for z in zoos:
        k = f"seed {z['meta']['seed']}"
        for g in z["goals"]:
            c = out.setdefault(g["goal"], {"goal": g["goal"], "holds": True, "per_zoo": []})
            c["holds"] = c["holds"] and g["holds"]
            c["per_zoo"].append({"zoo": k, "holds": g["holds"], "numbers": g["numbers"]})
    return list(out.values())


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.2f}"


def _zoo_table(z: dict[str, Any]) -> list[str]:
    m = z["meta"]
    lines = [
        f"### Zoo `{m['zoo']}` (design `{m['design']}`, seed {m['seed']})",
        "",
        f"Search split: first {m['search_limit']} questions; held-out: "
        f"{m['heldout_questions']} questions. Wall {m['wall_s']:.0f} s.",
        "",
        "| model | held-out | search split | evaluations | wall s | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in z["rows"].values():
        lines.append(
            f"| {r['label']} | {_pct(r.get('heldout'))} | {_pct(r.get('search'))} | "
            f"{r.get('evaluations', '')} | {'' if r.get('wall_s') is None else round(r['wall_s'])} "
            f"| {r.get('note', '')} |"
        )
    lines.append("")
    for g in z["goals"]:
        lines.append(f"- {'HOLDS' if g['holds'] else 'FAILS'}: {g['goal']} ({g['numbers']})")
    for c in z.get("comparisons", []):
        lines.append(f"- {c}")
    lines += ["", "Searches:", ""]
    for kind, s in z["searches"].items():
        lines.append(
            f"- {LABELS[kind]}: `{s['recipe']}`{' (reused run)' if s['reused'] else ''}, trials "
            f"{json.dumps(s['trials'])}, stop {json.dumps(s['stop_reason'])}, search-split "
            f"fitness {s['champion_fitness']} vs sources {json.dumps(s['baseline_fitness'])}"
        )
    lines.append("")
    return lines


def render(doc: dict[str, Any]) -> str:
    m = doc["meta"]
    lines = [
        f"# {doc.get('title', 'The zoo table')}",
        "",
        f"Generated by `benchmarks/zoo_table.py` on {m['date']}, {m['machine']}, device "
        f"`{m['device']}`, commit `{m['commit']}`, in {m['total_wall_s']:.0f} s. Command:",
        "",
        f"```\n{m['command']}\n```",
        "",
        f"Search fitness: `zoo_target_search` ({METRIC}, greedy, "
        f"{m.get('max_gen_toks', 16)} tokens). Held-out: "
        "`zoo_target_heldout`, same scoring, never seen by a search. Accuracies in %.",
        "",
        "Rows: the base and the two sources as they are; each control is MergeKit task arithmetic"
        " with one source (base + s * (source - base), s in "
        f"{', '.join(str(x) for x in SCALES)}, s chosen on the search split), or always answering"
        " the search split's most frequent gold number; the hand merge is base + every task vector"
        " at weight 1 (MergeKit task arithmetic, not searched)"
        + (
            ", and the best hand merge of a grid is task arithmetic with the weights (one per"
            " source) that scored best on the search split"
            if any("hand:grid" in z["rows"] for z in doc["zoos"])
            else ""
        )
        + "; each champion is the search's"
        " `best.yml` rebuilt with MergeKit. Evaluations = candidates the search scored (trials,"
        " both stages for PS+DFS); wall s = the search's wall time on this machine (for a control:"
        " its scale sweep and held-out scoring). The search-split column of a champion is the"
        " fitness the search saw (it picked the champion on it, so it is optimistic); held-out is"
        " the honest number. The JSON's `questions_scored` per row: the search-split questions"
        " scored to obtain it (for a champion, its search's whole scoring cost, confirm slices"
        " included; the held-out questions come on top).",
        "",
        "## Goals (held-out split, every zoo)",
        "",
    ]
    for g in doc["goals"]:
        per = "; ".join(
            f"{p['zoo']}: {'holds' if p['holds'] else 'fails'}, {p['numbers']}"
            for p in g["per_zoo"]
        )
        lines.append(f"- {'HOLDS' if g['holds'] else 'FAILS'}: {g['goal']} ({per})")
    if doc.get("notes"):  # hand-written reading, kept in the JSON (see --render)
        lines += ["", "## Notes", "", *doc["notes"]]
    lines += ["", "## Tables", ""]
    for z in doc["zoos"]:
        lines += _zoo_table(z)
    px = doc.get("proxy")
    if px:
        lines += [
            "## Proxy fitness",
            "",
            f"Every completed candidate of the first zoo's `{px['search']}` search "
            f"({px['candidates']}) rebuilt and scored with log-likelihood tasks written next to "
            "the run (no generation), against the accuracy the search measured on the same "
            "questions:",
            "",
            "| proxy | Spearman rho | p |",
            "|---|---:|---:|",
        ]
        for task, what in (
            ("zoo_target_search_loglik", "log P(worked gold answer given the question)"),
            ("zoo_target_search_loglik_final", "log P(gold final number given the question)"),
        ):
            r = px[task]
            rho = "n/a" if r["rho"] is None else f"{r['rho']:.3f}"
            p = "" if r["p"] is None else f"{r['p']:.3g}"
            lines.append(f"| {what} | {rho} | {p} |")
        lines.append("")
    return "\n".join(lines)
