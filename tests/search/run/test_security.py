"""Security: configs and recipes are data, not code.  YAML is read with safe loaders only, no
model code runs unless asked (trust_remote_code stays off), and nothing a config names (model
names, the study name) makes the search write outside RUN_DIR."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml

from mergekit_evo.config import ConfigError, load_search_config
from mergekit_evo.preflight import preflight
from mergekit_evo.search.run.runner import run_search
from tests.search.family import FITNESS

ROOT = Path(__file__).resolve().parents[3]


def _calls(attr: str) -> list[str]:
    """``yaml.<attr>(`` calls in the package and benchmarks, as file:line."""
    found = []
    for f in [*(ROOT / "mergekit_evo").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == attr
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "yaml"
            ):
                found.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    return found


def test_yaml_is_only_read_with_safe_load():
    assert _calls("load") == [] and _calls("unsafe_load") == [] and _calls("full_load") == []
    assert _calls("safe_load")  # the check looks at the right thing


def test_a_python_tag_in_a_config_is_refused_not_run(tmp_path):
    marker = tmp_path / "ran"
    cfg = tmp_path / "evil.yml"
    cfg.write_text(f"mode: !!python/object/apply:os.system ['touch {marker}']\nmodels: {{a: x}}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_search_config(cfg)
    assert not marker.exists()


def test_remote_code_in_a_model_folder_is_not_run(family, tmp_path):
    """A model folder asking for its own Python (auto_map) is refused: trust_remote_code is off."""
    evil = tmp_path / "evil"
    evil.mkdir()
    for f in family["math"].iterdir():
        (evil / f.name).write_bytes(f.read_bytes())
    marker = tmp_path / "ran"
    (evil / "tokenization_evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('remote code ran')\n"
        "from transformers import PreTrainedTokenizerFast\n"
        "class EvilTokenizer(PreTrainedTokenizerFast):\n"
        "    pass\n"
    )
    tok_cfg = json.loads((evil / "tokenizer_config.json").read_text())
    tok_cfg["auto_map"] = {"AutoTokenizer": [None, "tokenization_evil.EvilTokenizer"]}
    tok_cfg["tokenizer_class"] = "EvilTokenizer"
    (evil / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    doc = {
        "mode": "ps",
        "models": {"math": str(evil), "lang": str(family["lang"])},
        "base_model": str(family["base"]),
        "fitness": FITNESS,
    }
    (tmp_path / "c.yml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="models.math: tokenizer does not load"):
        preflight(load_search_config(tmp_path / "c.yml"))
    assert not marker.exists()
    # the user's explicit consent (config key, or --trust-remote-code) runs it. EvilTokenizer is
    # a subclass: loading remote code marks its class for AutoTokenizer, which must not be
    # transformers' own PreTrainedTokenizerFast (every later save_pretrained would break)
    from mergekit_evo.search.run.identity import apply_overrides

    trusted = apply_overrides(load_search_config(tmp_path / "c.yml"), trust_remote_code=True)
    assert trusted.trust_remote_code
    preflight(trusted)
    assert marker.exists()


def test_names_in_a_config_cannot_write_outside_run_dir(family, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    doc = {
        "mode": "ps",
        "models": {"../../escaped-math": str(family["math"]), "/tmp/abs": str(family["lang"])},
        "base_model": str(family["base"]),
        "study_name": "../../escaped-study",
        "fitness": FITNESS,
        "optimizer": {"population_size": 4},
        "budget": {"max_trials": 2},
    }
    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump(doc))
    before = {p for p in tmp_path.rglob("*")}
    run_search(load_search_config(cfg), tmp_path / "deep" / "run", log=lambda s: None)
    after = {p for p in tmp_path.rglob("*")}
    outside = sorted(
        str(p.relative_to(tmp_path))
        for p in after - before
        if not p.is_relative_to(tmp_path / "deep" / "run") and p != tmp_path / "deep"
    )
    assert outside == []
    assert not (tmp_path / "escaped-math").exists() and not (tmp_path / "escaped-study").exists()
