"""Test settings: no network, one shared cache for generated data and tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("SEC_EVAL_DATA_DIR", str(ROOT / "tests" / "data"))
    # one cache per test session unless the caller keeps one across sessions
    if "SEC_CACHE_DIR" not in os.environ:
        os.environ["SEC_CACHE_DIR"] = str(ROOT / ".cache" / "test")


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ["SEC_CACHE_DIR"])
