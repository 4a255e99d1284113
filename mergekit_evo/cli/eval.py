"""``mergekit-evo eval``: score a saved model on lm-eval tasks (a report: any split allowed).

torch, transformers and lm-eval are imported inside the command so ``--help`` stays instant.
"""

from __future__ import annotations

import json

import click


def _parse_tasks(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("give at least one task name, comma-separated")
    return names


@click.command(name="eval")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--tasks",
    required=True,
    help="Comma-separated lm-eval task names, e.g. evo_gsm8k,evo_mgsm_direct_ja "
    "(see `mergekit-evo tasks`).",
)
@click.option("--limit", type=float, default=None, help="Docs per task (or a fraction < 1).")
@click.option("--num-fewshot", type=int, default=None, help="Default: each task's own.")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda:0.")
@click.option("--max-gen-toks", type=int, default=None, help="Default: lm-eval's (256).")
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--include-path",
    "include_path",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Extra lm-eval task folder (repeatable).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print {task: {metric: value}} as JSON.")
def eval_command(
    model_dir: str,
    tasks: str,
    limit: float | None,
    num_fewshot: int | None,
    batch_size: int,
    device: str,
    max_gen_toks: int | None,
    dtype: str,
    include_path: tuple[str, ...],
    seed: int,
    as_json: bool,
) -> None:
    """Score the model in MODEL_DIR on TASKS and print per-task metrics."""
    from mergekit_evo.fitness import FitnessError, FitnessSpec

    try:
        spec = FitnessSpec(
            tasks=_parse_tasks(tasks),
            limit=int(limit) if limit is not None and limit >= 1 else limit,
            num_fewshot=num_fewshot,
            batch_size=batch_size,
            device=device,
            max_gen_toks=max_gen_toks,
            seed=seed,
            include_path=list(include_path),
            allow_report_split=True,  # eval reports; it never feeds a search
            purpose="report",
        )
    except ValueError as err:
        raise click.UsageError(str(err)) from err

    import torch
    import transformers

    from mergekit_evo.fitness import FitnessEvaluator

    try:
        evaluator = FitnessEvaluator(spec)
    except FitnessError as err:
        raise click.ClickException(str(err)) from err
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype)
    model.eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    result = evaluator.score(model, tokenizer)
    if as_json:
        click.echo(json.dumps(result.per_task, indent=2, sort_keys=True))
        return
    for name, metrics in result.per_task.items():
        scored = result.metrics[name]
        click.echo(f"{name}: {scored} = {metrics[scored]:.4f}")
        for key, value in sorted(metrics.items()):
            if key != scored:
                click.echo(f"    {key} = {value:.4f}")
    click.echo(f"score (weighted mean) = {result.score:.4f}  [{result.seconds:.1f}s]")
