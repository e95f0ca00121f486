"""``model.source: hub`` and ``cache``: a Hugging Face hub id (``hub_id``), from the local Hugging
Face cache (no network) or, for ``hub``, from the hub itself when its endpoint answers within a few
seconds. ``from_pretrained`` takes the hub id; nothing is written under the project's cache."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sec.models.core import ResolvedModel, register_source, unavailable


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """True when the hub endpoint (``HF_ENDPOINT``, default huggingface.co) accepts a TCP
    connection within ``timeout_s`` seconds and offline mode (``HF_HUB_OFFLINE``) is off.
    transformers itself retries for ~50 s before failing on a machine without network."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def in_hf_cache(hub_id: str) -> bool:
    """Whether the Hugging Face cache holds ``hub_id`` (its ``config.json``)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def from_hf_cache(cfg: Mapping[str, Any], tried: list[str]) -> ResolvedModel | None:
    """The model's ``hub_id`` if the Hugging Face cache holds it; else None (the reason appended
    to ``tried`` when there is a hub id)."""
    hub_id = cfg.get("hub_id")
    if not hub_id:
        return None
    if in_hf_cache(hub_id):
        return ResolvedModel(hub_id, "cache")
    tried.append(f"hub cache: {hub_id} not cached")
    return None


def from_hub(cfg: Mapping[str, Any], tried: list[str]) -> ResolvedModel | None:
    """The model's ``hub_id`` if the hub is reachable; else None (the reason appended to ``tried``
    when there is a hub id)."""
    hub_id = cfg.get("hub_id")
    if not hub_id:
        return None
    if hub_reachable():
        return ResolvedModel(hub_id, "hub")
    tried.append("hub: endpoint unreachable or HF_HUB_OFFLINE=1")
    return None


def resolve_cache(cfg: Mapping[str, Any], cache_dir: Path) -> ResolvedModel:
    tried: list[str] = []
    found = from_hf_cache(cfg, tried)
    if found is None:
        raise unavailable(cfg, tried)
    return found


def resolve_hub(cfg: Mapping[str, Any], cache_dir: Path) -> ResolvedModel:
    tried: list[str] = []
    found = from_hf_cache(cfg, tried) or from_hub(cfg, tried)
    if found is None:
        raise unavailable(cfg, tried)
    return found


register_source("cache", resolve_cache)
register_source("hub", resolve_hub)
