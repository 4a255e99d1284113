"""Growing a zoo's search split: the first questions stay, nothing repeats another split or any
fine-tune's training question, and extending in steps equals extending at once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _questions(path: Path) -> list[str]:
    return [json.loads(line)["question"] for line in path.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mergekit_evo.zoo.build import build_zoo

    out = tmp_path_factory.mktemp("zoo") / "z"
    build_zoo(out, size="tiny", design="paths", threads=1, log=lambda _: None)
    return out


def test_extension_keeps_the_prefix_and_stays_disjoint(tiny_zoo: Path, tmp_path: Path) -> None:
    from mergekit_evo.zoo.extend import _training_questions, extend_search_split

    zoo = tmp_path / "z"
    shutil.copytree(tiny_zoo, zoo)
    before = _questions(zoo / "data" / "target_search.jsonl")
    assert extend_search_split(zoo, 80) == 80 - len(before)
    after = _questions(zoo / "data" / "target_search.jsonl")
    assert after[: len(before)] == before and len(after) == 80 == len(set(after))
    others = set()
    for split in ("target_heldout", "math_heldout", "verbs_heldout"):
        others |= set(_questions(zoo / "data" / f"{split}.jsonl"))
    manifest = json.loads((zoo / "zoo.json").read_text())
    from mergekit_evo.zoo.sizes import ZooSize

    trained = _training_questions(0, ZooSize(**manifest["size_config"]), "paths", set())
    assert trained, "the fine-tunes' questions were regenerated"
    new = set(after[len(before) :])
    assert not new & others and not new & trained
    assert manifest["splits"]["target_search"]["n"] == 80
    assert extend_search_split(zoo, 80) == 0  # already there


def test_extension_in_steps_equals_at_once(tiny_zoo: Path, tmp_path: Path) -> None:
    from mergekit_evo.zoo.extend import extend_search_split

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_zoo, a)
    shutil.copytree(tiny_zoo, b)
    extend_search_split(a, 40)
    extend_search_split(a, 70)
    extend_search_split(b, 70)
    assert (a / "data" / "target_search.jsonl").read_bytes() == (
        b / "data" / "target_search.jsonl"
    ).read_bytes()


def test_extension_refuses_an_edited_split(tiny_zoo: Path, tmp_path: Path) -> None:
    from mergekit_evo.zoo.extend import extend_search_split

    zoo = tmp_path / "z"
    shutil.copytree(tiny_zoo, zoo)
    data = zoo / "data" / "target_search.jsonl"
    lines = data.read_text().splitlines()
    data.write_text("\n".join(reversed(lines)) + "\n")
    with pytest.raises(ValueError, match="not the ones seed 0 draws"):
        extend_search_split(zoo, 60)


@pytest.mark.parametrize("zoo", ["zoo", "zoo-paths"])
def test_committed_zoos_hold_1000_search_questions(zoo: str) -> None:
    """The fixtures were extended (not rebuilt): 1,000 distinct search questions, none held out."""
    root = REPO / "fixtures" / zoo
    search = _questions(root / "data" / "target_search.jsonl")
    heldout = set(_questions(root / "data" / "target_heldout.jsonl"))
    assert len(search) == len(set(search)) == 1000
    assert not set(search) & heldout
