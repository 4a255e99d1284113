"""Zoo tests: the committed CPU fixture loads and generates; tiny builds are fast and deterministic;
splits are disjoint; the task YAML loads through lm-eval's TaskManager."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "zoo"
MODELS = ("base", "math", "verbs")
SPLITS = ("target_search", "target_heldout", "math_heldout", "verbs_heldout")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_zoos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny builds with seed 0, through the click command."""
    from click.testing import CliRunner

    from mergekit_evo.cli.zoo import zoo_command

    root = tmp_path_factory.mktemp("zoo")
    out = []
    for name, seed in (("a", 0), ("b", 0)):
        d = root / name
        res = CliRunner().invoke(
            zoo_command, ["build", str(d), "--size", "tiny", "--seed", str(seed), "--threads", "1"]
        )
        assert res.exit_code == 0, res.output
        out.append(d)
    return out[0], out[1]


def test_tiny_build_is_deterministic(tiny_zoos: tuple[Path, Path]) -> None:
    a, b = tiny_zoos
    for m in MODELS:
        assert _sha(a / m / "model.safetensors") == _sha(b / m / "model.safetensors"), m
    for s in SPLITS:
        assert (a / "data" / f"{s}.jsonl").read_bytes() == (b / "data" / f"{s}.jsonl").read_bytes()
    assert _sha(a / "math" / "model.safetensors") != _sha(a / "verbs" / "model.safetensors")


@pytest.mark.parametrize("design", ["verbs", "lang"])
def test_seed_changes_data(design: str) -> None:
    from mergekit_evo.zoo.build import _make_splits
    from mergekit_evo.zoo.designs import DESIGNS
    from mergekit_evo.zoo.sizes import SIZES

    s0, _ = _make_splits(0, SIZES["tiny"], DESIGNS[design])
    s1, _ = _make_splits(1, SIZES["tiny"], DESIGNS[design])
    assert s0["target_search"][0] != s1["target_search"][0]


def test_lang_design_builds(tmp_path: Path) -> None:
    """The paper-shaped design (MATH + the invented language L) still builds, with its splits."""
    from mergekit_evo.zoo.build import build_zoo

    manifest = build_zoo(tmp_path, size="tiny", design="lang", threads=1, log=lambda _: None)
    assert manifest["design"] == "lang"
    assert set(manifest["models"]) == {"base", "math", "lang"}
    assert set(manifest["splits"]) == {
        "target_search", "target_heldout", "math_heldout", "lang_heldout"
    }  # fmt: skip
    question = json.loads((tmp_path / "data" / "target_search.jsonl").open().readline())
    assert not set(question["question"].split()) & {"has", "how", "many"}  # written in L


def test_sign_free_text_never_tells_a_new_verb_sign() -> None:
    """The base may read the new verbs, but nothing it reads may reveal which add and which
    take away: no worked problem uses them, and a gain's amount is capped like a loss's (an
    amount above the start would otherwise mark the verb as a gain)."""
    from mergekit_evo.zoo import corpus
    from mergekit_evo.zoo.designs import VERBS
    from mergekit_evo.zoo.language import NEW_GAIN_VERBS, NEW_LOSS_VERBS

    new = set(NEW_GAIN_VERBS) | set(NEW_LOSS_VERBS)
    rng = random.Random(0)
    seen_new = 0
    for _ in range(3000):
        doc = corpus.base_document(
            rng, set(), VERBS.base_mixture, 0.2, VERBS.text_style, VERBS.problem_style
        )
        if new & set(doc.split()):
            seen_new += 1
            assert "=" not in doc, doc
    assert seen_new > 100  # the base does read them
    for have in range(0, 30):
        for _ in range(50):
            sent, d = corpus._change(rng, "Tom", "Mia", "pens", have, corpus.ANY_VERBS)
            assert 1 <= abs(d) <= max(1, have), (have, sent)


def test_tiny_manifest(tiny_zoos: tuple[Path, Path]) -> None:
    manifest = json.loads((tiny_zoos[0] / "zoo.json").read_text())
    assert manifest["seed"] == 0 and manifest["size"] == "tiny"
    assert set(manifest["models"]) == set(MODELS)
    assert set(manifest["splits"]) == set(SPLITS)
    assert manifest["size_config"]["layers"] >= 8
    assert manifest["command"].startswith("mergekit-evo zoo build")


def _check_splits(zoo: Path) -> None:
    rows = {}
    for s in SPLITS:
        with open(zoo / "data" / f"{s}.jsonl", encoding="utf-8") as f:
            rows[s] = [json.loads(line) for line in f]
        assert rows[s], s
        for r in rows[s]:
            assert set(r) == {"question", "answer"}
            head, _, n = r["answer"].rpartition("#### ")
            assert head and n.strip().isdigit(), r
    qs = {s: {r["question"] for r in rows[s]} for s in SPLITS}
    assert len(qs["target_search"]) == len(rows["target_search"])  # no repeats
    assert not qs["target_search"] & qs["target_heldout"]
    for s in SPLITS:
        for t in SPLITS:
            if s < t:
                assert not qs[s] & qs[t], (s, t)


def test_splits_disjoint_tiny(tiny_zoos: tuple[Path, Path]) -> None:
    _check_splits(tiny_zoos[0])


def test_splits_disjoint_fixture() -> None:
    _check_splits(FIXTURE)


def test_generated_text_tokenizes_without_unk() -> None:
    from mergekit_evo.zoo import corpus
    from mergekit_evo.zoo.tokenizer import make_tokenizer

    tok = make_tokenizer()
    rng = random.Random(0)
    from mergekit_evo.zoo.designs import VERBS

    docs = [corpus.base_document(rng, set()) for _ in range(300)]
    docs += [
        corpus.base_document(
            rng, set(), VERBS.base_mixture, 0.2, VERBS.text_style, VERBS.problem_style
        )
        for _ in range(300)
    ]
    docs += [p + " " + a for p, a in corpus.math_examples(rng, 50, set())]
    docs += [p + " " + a for p, a in corpus.lang_examples(rng, 50, set())]
    docs += [p + " " + a for p, a in corpus.verbs_examples(rng, 50, set())]
    for d in docs:
        ids = tok(d)["input_ids"]
        assert tok.unk_token_id not in ids, d
        assert len(ids) == len(d.split())
        assert tok.decode(ids) == d


def test_fixture_loads_and_generates() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = json.loads((FIXTURE / "zoo.json").read_text())
    assert manifest["size"] == "cpu"
    tok = AutoTokenizer.from_pretrained(str(FIXTURE / "tokenizer"))
    with open(FIXTURE / "data" / "math_heldout.jsonl", encoding="utf-8") as f:
        question = json.loads(f.readline())["question"]
    enc = tok([f"Q: {question} A:"], return_tensors="pt")
    for m in MODELS:
        assert AutoTokenizer.from_pretrained(str(FIXTURE / m)).vocab_size == tok.vocab_size
        model = AutoModelForCausalLM.from_pretrained(str(FIXTURE / m), dtype=torch.float32)
        assert model.config.num_hidden_layers >= 8
        out = model.generate(**enc, max_new_tokens=20, do_sample=False)
        text = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        assert "####" in text, (m, text)
    total = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert total <= 20 * 2**20


def test_fixture_math_model_solves_english_problems() -> None:
    """A weak behavioural check that the committed MATH source learned its skill."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergekit_evo.zoo.evaluate import accuracy, load_split

    tok = AutoTokenizer.from_pretrained(str(FIXTURE / "tokenizer"))
    records = load_split(FIXTURE / "data" / "math_heldout.jsonl")[:50]
    model = AutoModelForCausalLM.from_pretrained(str(FIXTURE / "math"), dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(str(FIXTURE / "base"), dtype=torch.float32)
    assert accuracy(model, tok, records) > accuracy(base, tok, records)


@pytest.mark.parametrize("zoo_kind", ["tiny", "fixture"])
def test_tasks_load_through_lm_eval(zoo_kind: str, tiny_zoos, tmp_path, monkeypatch) -> None:
    from lm_eval.tasks import TaskManager, get_task_dict

    zoo = tiny_zoos[0] if zoo_kind == "tiny" else FIXTURE
    monkeypatch.chdir(tmp_path)  # data paths must not depend on the working directory
    tm = TaskManager(include_path=str(zoo / "tasks"))
    names = [f"zoo_{s}" for s in SPLITS]
    for n in names:
        assert n in tm.all_tasks
    tasks = get_task_dict(names, tm)
    manifest = json.loads((zoo / "zoo.json").read_text())
    for s in SPLITS:
        task = tasks[f"zoo_{s}"]
        docs = list(task.test_docs())
        assert len(docs) == manifest["splits"][s]["n"]
        assert task.doc_to_text(docs[0]).startswith("Q: ")
        assert task.doc_to_target(docs[0]).rpartition("#### ")[2].isdigit()
