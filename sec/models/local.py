"""``model.source: local``: a model directory on disk (``local_path``, with a ``config.json``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sec.models.core import ModelSourceError, ResolvedModel, register_source


def resolve_local(cfg: Mapping[str, Any], cache_dir: Path) -> ResolvedModel:
    """``local_path`` as it is.

    Raises:
        ModelSourceError: the directory has no ``config.json``.
    """
    path = Path(str(cfg.get("local_path") or ""))
    if not (path / "config.json").exists():
        raise ModelSourceError(f"model.local_path={str(path)!r} has no config.json")
    return ResolvedModel(str(path), "local")


register_source("local", resolve_local)
