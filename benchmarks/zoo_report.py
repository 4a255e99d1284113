"""The zoo table's verdicts and text: issue 17's goals (issue 18's on ``real-base`` zoos) per
zoo and over every zoo, the
comparisons the issue asks to report, and the Markdown of ``docs/zoo.md`` / ``docs/zoo-gpu.md``.

Kept apart from ``zoo_table.py`` (which runs the searches and scores the rows) so the goals can
be read, tested and re-rendered (``zoo_table.py --render``) without torch or a zoo.

Row ids (``zoos[].rows``): ``base`` and each source by name; ``control:<source>`` (its task
vector alone at the best scale) and ``control:constant``; ``hand:<label>`` (each distinct PS
standard start point's recipe, as a person writes it) and ``hand_path:<label>`` (each DFS start
path's); one per search kind (:data:`LABELS`) and ``<kind>:full`` for its twin run with
multi-fidelity off. Every row has ``heldout``, ``search`` and ``questions_scored``.
"""

from __future__ import annotations

import json
from typing import Any

LABELS = {
    "ps": "PS champion, DARE-TIES (the paper's method)",
    "ps_choice": "PS champion, method as a choice",
    "dfs": "DFS champion",
    "dfs_cma": "DFS champion, CMA-ES alone (polish_share 0)",
    "ps_dfs": "PS+DFS champion",
}
FULL = ":full"  # suffix of a search kind's twin with fitness.fidelity removed
METRIC = "exact_match,flexible-extract"
SCALES = (0.5, 1.0, 1.5, 2.0)  # the single-source control's scales
EPS = 1e-9  # accuracies are fractions of questions: 0.58 - 0.55 must count as 3 points
PATHS = "paths"  # the design whose zoos the zoo-paths-only goals are judged on
MF_POINTS = 0.02  # multi-fidelity champion within 2 points of the full-fidelity one
MF_SHARE = 0.5  # ... for at most half of its questions scored
SEARCHED = ("ps", "ps_choice", "dfs", "dfs_cma", "ps_dfs")  # issue 18's searched champions


def label_of(kind: str, ps_methods: list[str] | None = None) -> str:
    """A search kind's row label (``<kind>:full``: the same search, multi-fidelity off);
    ``ps_methods``: the PS+DFS recipe's PS stage methods (the method choice, or one)."""
    base = kind.removesuffix(FULL)
    text = LABELS.get(base, base)
    if base == "ps_dfs" and ps_methods:
        stage = "method as a choice" if len(ps_methods) > 1 else ps_methods[0]
        text += f" (PS stage: {stage})"
    return f"{text}, multi-fidelity off" if kind.endswith(FULL) else text


def _best(h: dict[str, float], prefix: str) -> tuple[str, float] | None:
    """The row with the best held-out score among ids starting with ``prefix``."""
    got = [(k, v) for k, v in h.items() if k.startswith(prefix)]
    return max(got, key=lambda kv: kv[1]) if got else None


def _goal(goal: str, holds: bool | None, numbers: str, scope: str = "all") -> dict[str, Any]:
    """``holds`` None: not measured (a row it needs is missing); ``scope``: the designs it is
    judged on (``all`` or one design)."""
    return {"goal": goal, "holds": holds, "numbers": numbers, "scope": scope}


def _missing(h: dict[str, float], *keys: str) -> str | None:
    gone = [k for k in keys if k not in h]
    return f"not measured: no held-out score for {', '.join(gone)}" if gone else None


def goals(
    rows: dict[str, dict[str, Any]],
    sources: list[str],
    design: str = "verbs",
    twins: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Issue 17's goals on one zoo's held-out split, each with the numbers it was decided on.

    "PS" is the weight-merge champion with the method as a choice (``ps_choice``; PS+DFS is built
    on it); the paper's DARE-TIES alone (``ps``) is reported beside it. ``twins``: the search
    kinds whose multi-fidelity-off twin (``<kind>:full``) the table was asked to run.
    Design ``real-base``: issue 18's goals (:func:`real_base_goals`).
    """
    if design == "real-base":
        return real_base_goals(rows, sources)
    h = {k: v["heldout"] for k, v in rows.items() if v.get("heldout") is not None}
    best_src = max((h[k] for k in sources if k in h), default=None)
    controls = max((v for k, v in h.items() if k.startswith("control:")), default=None)
    hand, hand_path = _best(h, "hand:"), _best(h, "hand_path:")
    ps = f", ps (DARE-TIES alone) {h['ps']:.4f}" if "ps" in h else ""
    out = []

    def over(
        kind: str, name: str, ref: tuple[str, float] | None, what: str, beside: str = ""
    ) -> None:
        goal = f"{name} >= best {what} row + 3 points"
        if kind not in h or ref is None:
            out.append(_goal(goal, None, _missing(h, kind) or f"not measured: no {what} row"))
            return
        out.append(
            _goal(
                goal,
                h[kind] - ref[1] >= 0.03 - EPS,
                f"{kind} {h[kind]:.4f}, best {what} {ref[1]:.4f} ({ref[0]}){beside}",
            )
        )

    over("ps_choice", "PS champion (method as a choice)", hand, "hand:", ps)
    methods = rows.get("ps_dfs", {}).get("ps_methods") or []
    off = f"; its PS stage is {methods[0]}, not the method choice" if len(methods) == 1 else ""
    over("ps_dfs", "PS+DFS champion (on the method choice)", hand, "hand:", ps + off)
    over("dfs", "DFS champion", hand_path, "hand_path:")
    if design == PATHS:
        goal = "DFS champion >= best source + 10 points (zoo-paths)"
        miss = _missing(h, "dfs") or (None if best_src is not None else "not measured: sources")
        out.append(
            _goal(goal, None, miss, PATHS)
            if miss
            else _goal(
                goal,
                h["dfs"] - best_src >= 0.10 - EPS,
                f"DFS {h['dfs']:.4f}, best source {best_src:.4f}",
                PATHS,
            )
        )
    goal = "PS champion >= 2x best source and >= +30 points over every control"
    miss = _missing(h, "ps_choice")
    if miss or best_src is None or controls is None:
        out.append(_goal(goal, None, miss or "not measured: sources or controls"))
    else:

        def passes(v: float) -> bool:
            return v >= 2 * best_src - EPS and v - controls >= 0.30 - EPS

        beside = ""
        if "ps" in h:
            would = "would" if passes(h["ps"]) else "would not"
            beside = f"; ps (DARE-TIES alone) {h['ps']:.4f}, {would} hold"
        out.append(
            _goal(
                goal,
                passes(h["ps_choice"]),
                f"ps_choice {h['ps_choice']:.4f}, best source {best_src:.4f}, "
                f"best control {controls:.4f}{beside}",
            )
        )
    goal = "PS+DFS champion >= max(PS champion, DFS champion)"
    miss = _missing(h, "ps_dfs", "ps_choice", "dfs")
    out.append(
        _goal(goal, None, miss)
        if miss
        else _goal(
            goal,
            h["ps_dfs"] >= max(h["ps_choice"], h["dfs"]) - EPS,
            f"PS+DFS {h['ps_dfs']:.4f}, PS {h['ps_choice']:.4f}, DFS {h['dfs']:.4f}",
        )
    )
    if design == PATHS:
        goal = "PS+DFS champion >= PS champion + 3 points (zoo-paths)"
        miss = _missing(h, "ps_dfs", "ps_choice")
        out.append(
            _goal(goal, None, miss, PATHS)
            if miss
            else _goal(
                goal,
                h["ps_dfs"] - h["ps_choice"] >= 0.03 - EPS,
                f"PS+DFS {h['ps_dfs']:.4f}, PS {h['ps_choice']:.4f}",
                PATHS,
            )
        )
    for kind in twins or []:
        out.append(_mf_goal(rows, h, kind))
    return out


def real_base_goals(rows: dict[str, dict[str, Any]], sources: list[str]) -> list[dict[str, Any]]:
    """Issue 18's goals (a zoo on a real pretrained base): the best searched champion >= the
    best source + 10 points and >= the best hand merge + 3; DFS >= the best source + 5;
    PS+DFS >= max(PS, DFS). Hand merges: the equal-weight one, the grid's pick and every PS
    start point's recipe (``hand*``). PS in the last goal is the search PS+DFS's first stage
    repeats: ``ps_choice`` when its PS stage is the method choice, else ``ps`` (DARE-TIES). A
    goal whose rows are missing (a search cut off by the call's time limit) is not measured."""
    h = {k: v["heldout"] for k, v in rows.items() if v.get("heldout") is not None}
    best_src = max((h[k] for k in sources if k in h), default=None)
    hands = {k: v for k, v in h.items() if k == "hand" or k.startswith("hand:")}
    out = []
    goal = "best searched champion >= best source + 10 points and >= best hand merge + 3 points"
    searched = {k: h[k] for k in SEARCHED if k in h}
    if not searched or not hands or best_src is None:
        what = "no searched champion" if not searched else "no source or hand merge row"
        out.append(_goal(goal, None, f"not measured: {what}"))
    else:
        top = max(searched, key=lambda k: searched[k])
        best_hand = max(hands.values())
        out.append(
            _goal(
                goal,
                searched[top] - best_src >= 0.10 - EPS and searched[top] - best_hand >= 0.03 - EPS,
                f"{LABELS[top]} {searched[top]:.4f}, best source {best_src:.4f}, "
                f"best hand merge {best_hand:.4f}",
            )
        )
    goal = "DFS champion >= best source + 5 points"
    miss = _missing(h, "dfs") or (None if best_src is not None else "not measured: sources")
    out.append(
        _goal(goal, None, miss)
        if miss
        else _goal(
            goal,
            h["dfs"] - best_src >= 0.05 - EPS,
            f"DFS {h['dfs']:.4f}, best source {best_src:.4f}",
        )
    )
    methods = rows.get("ps_dfs", {}).get("ps_methods") or []
    ps = "ps_choice" if len(methods) > 1 else "ps"
    goal = "PS+DFS champion >= max(PS, DFS)"
    miss = _missing(h, "ps_dfs", ps, "dfs")
    if miss:
        out.append(_goal(goal, None, miss))
    else:
        other = "ps" if ps == "ps_choice" else "ps_choice"
        beside = f"; {other} {h[other]:.4f}" if other in h else ""
        out.append(
            _goal(
                goal,
                h["ps_dfs"] >= max(h[ps], h["dfs"]) - EPS,
                f"PS+DFS {h['ps_dfs']:.4f}, PS ({ps}, its first stage's search) {h[ps]:.4f}, "
                f"DFS {h['dfs']:.4f}{beside}",
            )
        )
    return out


def _mf_goal(rows: dict[str, dict[str, Any]], h: dict[str, float], kind: str) -> dict[str, Any]:
    """Multi-fidelity on vs off for one search kind: the champion within 2 points held-out for
    at most half the questions scored."""
    full = kind + FULL
    goal = (
        f"{kind} with multi-fidelity: champion within {100 * MF_POINTS:.0f} points of {full} "
        f"for <= {100 * MF_SHARE:.0f}% of its questions scored"
    )
    miss = _missing(h, kind, full)
    if miss:
        return _goal(goal, None, miss)
    if not rows[kind].get("fidelity"):
        return _goal(goal, None, f"not measured: the {kind} recipe has no fitness.fidelity")
    q_mf, q_full = rows[kind].get("questions_scored"), rows[full].get("questions_scored")
    if not q_mf or not q_full:
        return _goal(goal, None, "not measured: questions_scored missing (metrics.json)")
    gap = abs(h[kind] - h[full])
    share = q_mf / q_full
    return _goal(
        goal,
        gap <= MF_POINTS + EPS and share <= MF_SHARE + EPS,
        f"{kind} {h[kind]:.4f} vs {full} {h[full]:.4f} (gap {100 * gap:.2f} points); "
        f"questions {q_mf} vs {q_full} ({100 * share:.0f}%)",
    )


def comparisons(rows: dict[str, dict[str, Any]]) -> list[str]:
    """What the issue asks to report beside the goals (no threshold)."""
    h = {k: v["heldout"] for k, v in rows.items() if v.get("heldout") is not None}
    out = []
    if "ps" in h and "ps_choice" in h:
        out.append(
            f"PS champion: method as a choice {100 * h['ps_choice']:.2f} vs DARE-TIES alone "
            f"{100 * h['ps']:.2f}"
        )
    if "dfs" in h and "dfs_cma" in h:
        out.append(
            f"DFS polish {100 * h['dfs']:.2f} vs CMA-ES alone {100 * h['dfs_cma']:.2f} "
            f"(evaluations {rows['dfs'].get('evaluations')} vs "
            f"{rows['dfs_cma'].get('evaluations')})"
        )
    start = next((k for k, v in rows.items() if v.get("configured_start") and k in h), None)
    if "dfs" in h and start:
        out.append(
            f"DFS champion {100 * h['dfs']:.2f} vs its start path ({start}) {100 * h[start]:.2f}"
        )
    for prefix, kinds in (("hand:", ("ps", "ps_choice", "ps_dfs")), ("hand_path:", ("dfs",))):
        best = _best(h, prefix)
        got = [f"{k} {100 * h[k]:.2f}" for k in kinds if k in h]
        if best and got:
            out.append(f"{', '.join(got)} vs best {prefix} row {100 * best[1]:.2f} ({best[0]})")
    for full in (k for k in rows if k.endswith(FULL) and k in h):
        kind = full.removesuffix(FULL)
        if kind in h:
            q_on, q_off = rows[kind].get("questions_scored"), rows[full].get("questions_scored")
            out.append(
                f"{kind} multi-fidelity on {100 * h[kind]:.2f} ({q_on} questions scored) vs off "
                f"{100 * h[full]:.2f} ({q_off})"
            )
    return out


def combine_goals(zoos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A goal holds when it holds on every zoo it is judged on (every zoo, or every zoo of its
    design); it fails when it fails on one; otherwise (a zoo where it could not be measured,
    or a zoo missing) it is not measured. The numbers of each zoo are kept."""
    out: dict[str, dict[str, Any]] = {}
    for z in zoos:
        m = z["meta"]
        k = f"{m['design']} seed {m['seed']}" if m.get("design") else f"seed {m['seed']}"
        for g in z["goals"]:
            scope = g.get("scope", "all")
            c = out.setdefault(
                g["goal"], {"goal": g["goal"], "holds": True, "scope": scope, "per_zoo": []}
            )
            c["per_zoo"].append({"zoo": k, "holds": g["holds"], "numbers": g["numbers"]})
    for c in out.values():
        judged = [z for z in zoos if c["scope"] == "all" or z["meta"].get("design") == c["scope"]]
        states = [p["holds"] for p in c["per_zoo"]]
        if any(s is False for s in states):
            c["holds"] = False
        elif any(s is None for s in states) or len(states) < len(judged):
            c["holds"] = None
    return list(out.values())


def verdict(holds: bool | None) -> str:
    return {True: "HOLDS", False: "FAILS", None: "NOT MEASURED"}[holds]


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
        "| row | model | held-out | search split | questions scored | evaluations | wall s "
        "| note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for key, r in z["rows"].items():
        wall = "" if r.get("wall_s") is None else round(r["wall_s"])
        qs = r.get("questions_scored")
        lines.append(
            f"| `{key}` | {r['label']} | {_pct(r.get('heldout'))} | {_pct(r.get('search'))} | "
            f"{'' if qs is None else qs} | {r.get('evaluations', '')} | {wall} "
            f"| {r.get('note', '')} |"
        )
    lines.append("")
    for g in z["goals"]:
        lines.append(f"- {verdict(g['holds'])}: {g['goal']} ({g['numbers']})")
    for c in z.get("comparisons", []):
        lines.append(f"- {c}")
    for kind, why in z.get("skipped", {}).items():
        lines.append(f"- not run: `{kind}`: {why}")
    lines += ["", "Searches:", ""]
    for kind, s in z["searches"].items():
        mf = s.get("fidelity")
        reused = " (reused run)" if s["reused"] else ""
        lines.append(
            f"- {label_of(kind, s.get('ps_methods'))}: `{s['recipe']}`{reused}, "
            f"trials {json.dumps(s['trials'])}, stop {json.dumps(s['stop_reason'])}, "
            f"multi-fidelity {json.dumps(mf) if mf else 'off'}, questions scored "
            f"{json.dumps(s.get('questions_scored'))}, champion stage {s.get('champion_stage')}, "
            f"search-split fitness {s['champion_fitness']} vs sources "
            f"{json.dumps(s['baseline_fitness'])}"
        )
    lines.append("")
    return lines


ROWS_TEXT = (
    "Rows: the base and the two sources as they are; each control is MergeKit task arithmetic"
    " with one source (base + s * (source - base), s in {scales}, s chosen on the search"
    " split), or always answering the search split's most frequent gold number. `hand:<label>`:"
    " each distinct standard start point of the PS spaces (the `ps` recipe's DARE-TIES and each"
    " method of the `ps_choice` recipe; mergekit_evo/space/starts.py) as the exact MergeKit"
    " recipe a person would write (each source alone, base + every task vector at weight 1, each"
    " method at MergeKit's defaults, the recipe's x0), not searched. `hand_path:<label>`: the"
    " same for the DFS recipe's start paths (each model's own layers, the two half-and-half"
    " frankenmerges). Each champion is the search's `best.yml` rebuilt with MergeKit; `ps` is"
    " the paper's DARE-TIES, `ps_choice` searches the merge method as a choice, `ps_dfs` is"
    " PS+DFS on the method choice; `<kind>:full` is the same search with multi-fidelity off"
    " (`fitness.fidelity` removed). Questions scored: for a search, every question its"
    " candidates were scored on (pruned ones partially) plus its confirm slice, over every"
    " stage (metrics.json `questions_scored`); for a scored row, its search-split questions; for"
    " a control, its scales x questions. Evaluations = candidates the search scored (complete"
    " and pruned trials, every stage); wall s = the search's wall time on this machine (for a"
    " control: its scale sweep and held-out scoring). The search-split column of a champion is"
    " rescored on the fitness questions (the search picked it on them, so it is optimistic);"
    " held-out is the honest number."
)


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
        ROWS_TEXT.format(scales=", ".join(str(x) for x in SCALES))
        + (
            " `hand:grid`: the best hand merge of a grid, task arithmetic with the weights (one"
            " per source) that scored best on the search split."
            if any("hand:grid" in z["rows"] for z in doc["zoos"])
            else ""
        ),
        "",
        "## Goals (held-out split, every zoo)",
        "",
    ]
    for g in doc["goals"]:
        per = "; ".join(
            f"{p['zoo']}: {verdict(p['holds']).lower()}, {p['numbers']}" for p in g["per_zoo"]
        )
        lines.append(f"- {verdict(g['holds'])}: {g['goal']} ({per})")
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
