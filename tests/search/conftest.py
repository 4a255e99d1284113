"""Fixtures for search tests: one tiny model family per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.search.family import make_family


@pytest.fixture(scope="session")
def family(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_family(tmp_path_factory.mktemp("family"))
