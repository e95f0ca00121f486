"""``model.source: auto`` (the default of every ``model/`` config): ``local_path`` when set
(:mod:`sec.models.local`), else the first of

1. the Hugging Face cache (no network),
2. the hub itself, when its endpoint answers within a few seconds (:mod:`sec.models.hub`),
3. the files a Python package ships (``package:``, :mod:`sec.models.package`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sec.models.core import ResolvedModel, register_source, unavailable
from sec.models.hub import from_hf_cache, from_hub
from sec.models.local import resolve_local
from sec.models.package import from_package


def resolve_auto(cfg: Mapping[str, Any], cache_dir: Path) -> ResolvedModel:
    if cfg.get("local_path"):
        return resolve_local(cfg, cache_dir)
    tried: list[str] = []
    found = from_hf_cache(cfg, tried) or from_hub(cfg, tried) or from_package(cfg, cache_dir, tried)
    if found is None:
        raise unavailable(cfg, tried)
    return found


register_source("auto", resolve_auto)
