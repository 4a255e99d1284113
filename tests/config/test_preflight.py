"""Bad input fails up front: 33 broken configs and model folders (tmp copies of the committed zoo,
corrupted), each refused by ``mergekit-evo search`` with exit code 1 and one line naming the
field, before any model loads and before RUN_DIR exists."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mergekit_evo.cli import main

ZOO = Path(__file__).resolve().parents[2] / "fixtures" / "zoo"

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    for part in ("base", "math", "verbs", "tasks", "data"):
        shutil.copytree(ZOO / part, root / part)
    return root


def _doc(zoo: Path, mode: str = "ps") -> Doc:
    doc: Doc = {
        "mode": mode,
        "models": {"math": str(zoo / "math"), "verbs": str(zoo / "verbs")},
        "base_model": str(zoo / "base"),
        "fitness": {
            "tasks": [{"name": "zoo_target_search", "metric": "exact_match,flexible-extract"}],
            "include_path": [str(zoo / "tasks")],
            "limit": 2,
        },
        "budget": {"max_trials": 2},
    }
    if mode == "dfs":
        doc["dfs"] = {"repeats": 2, "scales": "compact"}
    return doc


# -- corruptions of a model folder ----------------------------------------------------------------


def _edit_config(model: str, **changes: Any) -> Callable[[Path, Doc], None]:
    def mutate(zoo: Path, doc: Doc) -> None:
        f = zoo / model / "config.json"
        cfg = json.loads(f.read_text())
        cfg.update(changes)
        f.write_text(json.dumps(cfg))

    return mutate


def _write(model: str, name: str, data: bytes) -> Callable[[Path, Doc], None]:
    def mutate(zoo: Path, doc: Doc) -> None:
        (zoo / model / name).write_bytes(data)

    return mutate


def _truncate_weights(zoo: Path, doc: Doc) -> None:
    f = zoo / "verbs" / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _huge_header_length(zoo: Path, doc: Doc) -> None:
    f = zoo / "math" / "model.safetensors"
    f.write_bytes(struct.pack("<Q", 10**12) + f.read_bytes()[8:])


def _garbled_header(zoo: Path, doc: Doc) -> None:
    f = zoo / "math" / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[8:40] = b"\xff" * 32
    f.write_bytes(bytes(data))


def _wrong_tensor_size(zoo: Path, doc: Doc) -> None:
    f = zoo / "base" / "model.safetensors"
    data = f.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [d * 2 for d in header[name]["shape"]]
    raw = json.dumps(header).encode()
    f.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def _no_weights(zoo: Path, doc: Doc) -> None:
    (zoo / "verbs" / "model.safetensors").unlink()


def _sharded_index_missing_shard(zoo: Path, doc: Doc) -> None:
    index = {"metadata": {}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}
    (zoo / "math" / "model.safetensors.index.json").write_text(json.dumps(index))


def _bad_tokenizer(zoo: Path, doc: Doc) -> None:
    (zoo / "verbs" / "tokenizer.json").write_text('{"version": "1.0", "model": ')


def _no_config(zoo: Path, doc: Doc) -> None:
    (zoo / "math" / "config.json").unlink()


def _model_is_a_file(zoo: Path, doc: Doc) -> None:
    doc["models"]["verbs"] = str(zoo / "verbs" / "config.json")


def _model_missing(zoo: Path, doc: Doc) -> None:
    doc["models"]["math"] = str(zoo / "no-such-model")


def _base_missing(zoo: Path, doc: Doc) -> None:
    doc["base_model"] = str(zoo / "gone")


def _gemma_models(zoo: Path, doc: Doc) -> None:
    for m in ("math", "verbs"):
        _edit_config(m, model_type="gemma2", architectures=["Gemma2ForCausalLM"])(zoo, doc)
    doc.update(_doc(zoo, "dfs"))


def _dfs(mutate: Callable[[Path, Doc], None]) -> Callable[[Path, Doc], None]:
    def both(zoo: Path, doc: Doc) -> None:
        doc.update(_doc(zoo, "dfs"))
        doc.pop("base_model")
        mutate(zoo, doc)

    return both


# -- corruptions of the config itself -------------------------------------------------------------


def _set(dotted: str, value: Any) -> Callable[[Path, Doc], None]:
    def mutate(zoo: Path, doc: Doc) -> None:
        cur = doc
        keys = dotted.split(".")
        for k in keys[:-1]:
            cur = cur.setdefault(k, {})
        cur[keys[-1]] = value

    return mutate


RAW = "__raw__"  # the config file's text replaces the YAML dump


def _raw(text: str) -> Callable[[Path, Doc], None]:
    def mutate(zoo: Path, doc: Doc) -> None:
        doc[RAW] = text

    return mutate


CASES: list[tuple[str, Callable[[Path, Doc], None], list[str]]] = [
    # model folders
    ("config-json-not-json", _write("math", "config.json", b'{"hidden_size": 64,'),
     ["models.math", "not valid JSON", "line 1, column"]),
    ("config-json-a-list", _write("verbs", "config.json", b"[1, 2]"),
     ["models.verbs", "not a JSON object"]),
    ("config-json-missing", _no_config, ["models.math", "has no config.json"]),
    ("layers-not-a-number", _edit_config("math", num_hidden_layers="eight"),
     ["models.math", "num_hidden_layers is 'eight'"]),
    ("vocab-zero", _edit_config("base", vocab_size=0), ["base_model", "vocab_size is 0"]),
    ("weights-truncated", _truncate_weights, ["models.verbs", "truncated", "declares"]),
    ("weights-4-bytes", _write("math", "model.safetensors", b"\x00\x01\x02\x03"),
     ["models.math", "too short for a safetensors header"]),
    ("weights-header-length", _huge_header_length, ["models.math", "exceeds the file"]),
    ("weights-header-garbled", _garbled_header, ["models.math", "unreadable safetensors header"]),
    ("weights-tensor-size", _wrong_tensor_size, ["base_model", "bytes declared for F32"]),
    ("weights-missing", _no_weights, ["models.verbs", "no weight files"]),
    ("weights-shard-missing", _sharded_index_missing_shard,
     ["models.math", "names missing weight file", "model-00002-of-00002"]),
    ("tokenizer-broken", _bad_tokenizer, ["models.verbs", "tokenizer does not load"]),
    ("model-is-a-file", _model_is_a_file, ["models.verbs", "a file, not a model folder"]),
    ("model-missing", _model_missing, ["models.math", "no such model folder"]),
    ("base-missing", _base_missing, ["base_model", "no such model folder"]),
    # models against each other
    ("ps-hidden-size", _edit_config("verbs", hidden_size=32),
     ["models", "hidden_size differs", "verbs=32", "math=64", "PS merges"]),
    ("ps-layer-count", _edit_config("math", num_hidden_layers=6),
     ["num_hidden_layers differs", "math=6", "base_model=8"]),
    ("ps-vocab", _edit_config("base", vocab_size=300), ["vocab_size differs", "base_model=300"]),
    ("ps-architecture", _edit_config("verbs", architectures=["MistralForCausalLM"]),
     ["architectures differs", "MistralForCausalLM"]),
    ("dfs-heads", _dfs(_edit_config("verbs", num_attention_heads=8)),
     ["num_attention_heads differs", "verbs=8", "DFS stacks layers"]),
    ("dfs-unsupported-architecture", _gemma_models,
     ["models", "'gemma2' (math, verbs) is not supported by DFS"]),
    # numbers, YAML, file
    ("x0-nan", _set("ps.x0", float("nan")), ["ps.x0", "nan is not a finite number"]),
    ("target-inf", _set("budget.target_fitness", float("inf")),
     ["budget.target_fitness", "inf is not a finite"]),
    ("bounds-inf", _set("ps.bounds", {"weight": [0, float("-inf")]}),
     ["ps.bounds.weight.1", "not a finite"]),
    ("yaml-syntax", _raw("mode: ps\nmodels: {math: [x\nfitness: 1\n"),
     ["<file>", "not valid YAML", "line 3, column"]),
    ("yaml-a-list", _raw("- mode: ps\n"), ["<root>", "expected a mapping, got list"]),
    ("yaml-empty", _raw(""), ["<root>", "config is empty"]),
    # fitness tasks
    ("task-unknown", _set("fitness.tasks", [{"name": "zoo_no_such_task"}]),
     ["zoo_no_such_task"]),
    ("metric-unknown", _set("fitness.tasks", [{"name": "zoo_target_search", "metric": "bleu,x"}]),
     ["bleu,x"]),
    ("include-path-missing", _set("fitness.include_path", ["/no/tasks/here"]),
     ["fitness.include_path.0", "no such task folder"]),
    # the search space
    ("ps-method-unknown", _set("ps.method", "mystery"), ["ps.method", "mystery"]),
    ("dfs-window-past-T", _dfs(_set("dfs.window", [0, 999])), ["dfs.window", "999"]),
]  # fmt: skip


def _forbid_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    import mergekit_evo.methods as methods

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("a model was loaded or merged for an input that fails preflight")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    monkeypatch.setattr(methods, "merge_recipe", boom)


@pytest.mark.parametrize(("mutate", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_in_one_line_before_anything_is_written(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mutate: Any, words: list[str]
) -> None:
    zoo = tmp_path / "zoo"
    for part in ("base", "math", "verbs"):
        shutil.copytree(pristine / part, zoo / part)
    for part in ("tasks", "data"):
        (zoo / part).symlink_to(pristine / part)
    doc = _doc(zoo)
    mutate(zoo, doc)
    cfg = tmp_path / "search.yml"
    cfg.write_text(doc.pop(RAW) if RAW in doc else yaml.safe_dump(doc))
    _forbid_loading(monkeypatch)
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["search", str(cfg), "--out", str(run)])
    out = res.output.strip()
    assert res.exit_code == 1, out
    assert not isinstance(res.exception, AssertionError), res.exception  # nothing was loaded
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out  # one problem, one line
    assert out.startswith("Error: ")
    for w in words:
        assert w in out, out
    assert not run.exists()


def test_at_least_25_cases() -> None:
    assert len(CASES) >= 25


def test_layer_counts_may_differ_when_a_recipe_slices_them() -> None:
    """A --from-recipe template with slices: picks its own layer ranges; shapes still must agree."""
    from mergekit_evo.config import parse_search_config
    from mergekit_evo.preflight import _agreement, _folders

    doc = _doc(Path("/z"))
    cfg = parse_search_config(doc)
    folders = _folders(cfg)
    hf = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 8}
    configs = {p: dict(hf) for p in folders}
    configs["/z/math"]["num_hidden_layers"] = 6
    assert [m for _, m in _agreement(cfg, folders, configs)][0].startswith(
        "num_hidden_layers differs: math=6, verbs=8, base_model=8"
    )
    recipe = {"merge_method": "ties", "slices": [{"sources": [{"model": "/z/math"}]}]}
    sliced = cfg.model_copy(update={"ps": cfg.ps.model_copy(update={"recipe": recipe})})
    assert _agreement(sliced, folders, configs) == []
    configs["/z/verbs"]["hidden_size"] = 32
    assert "hidden_size differs" in _agreement(sliced, folders, configs)[0][1]
