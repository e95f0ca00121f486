"""``model.source: random_init``: a tiny randomly initialised model (seeded) with a real tokenizer,
for tests and smoke runs, cached under ``<cache_dir>/models/<name>``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sec.models.core import ResolvedModel, named_dir, publish_dir, register_source, resolve_model, temp_dir
from sec.models.package import package_dir


def materialise(cfg: Mapping[str, Any], cache_dir: Path) -> Path:
    """Build the model once: ``architecture`` (a transformers config class name), ``config`` (its
    kwargs), ``tokenizer`` (another model config whose tokenizer is used), ``init_seed``."""
    target = named_dir(cfg, cache_dir)
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
    tmp = temp_dir(target)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    publish_dir(tmp, target)
    return target


def resolve_random_init(cfg: Mapping[str, Any], cache_dir: Path) -> ResolvedModel:
    return ResolvedModel(str(materialise(cfg, cache_dir)), "random_init")


register_source("random_init", resolve_random_init, planned_path=named_dir)
