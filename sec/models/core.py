"""What every model source shares: the registry that :func:`resolve_model` dispatches through by
``model.source``, the model cache (``<cache_dir>/models``, one builder per model, atomic publishing),
the ``model/`` configs, and the ``build`` command of the project's own model builders.

A source is one module of :mod:`sec.models` that ends with ``register_source(name, resolve)``
(:data:`SOURCE_MODULES` says which module registers each built-in name; :func:`resolve_model`
imports it on first use). It imports this module only, and other sources' public functions.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("sec.models")

#: the project's configs (a source checkout: conf/ sits beside sec/)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

#: built-in ``model.source`` names -> the module that registers each (imported on first use)
SOURCE_MODULES = {
    "auto": "sec.models.auto",
    "hub": "sec.models.hub",
    "cache": "sec.models.hub",
    "package": "sec.models.package",
    "local": "sec.models.local",
    "random_init": "sec.models.random_init",
    "pretrain": "sec.models.testbed",
    "sft": "sec.models.warmup",
}
SOURCES = tuple(SOURCE_MODULES)


class ModelSourceError(RuntimeError):
    """No configured source could provide the model (the message lists what was tried)."""


@dataclass
class ResolvedModel:
    """Where a model's files live: ``path`` is what ``from_pretrained`` takes (a hub id or a
    directory); ``source`` is one of :data:`SOURCES` (never ``auto``)."""

    path: str
    source: str


@dataclass(frozen=True)
class ModelSource:
    """A registered ``model.source``: ``resolve(cfg, cache_dir)`` finds (or builds) the model;
    ``planned_path(cfg, cache_dir)``, where given, names the directory it builds into without
    building (:func:`planned_path`)."""

    name: str
    resolve: Callable[[Mapping[str, Any], Path], ResolvedModel]
    planned_path: Callable[[Mapping[str, Any], Path], Path] | None = None


_REGISTRY: dict[str, ModelSource] = {}
_LOCK = threading.Lock()


def register_source(
    name: str,
    resolve: Callable[[Mapping[str, Any], Path], ResolvedModel],
    *,
    planned_path: Callable[[Mapping[str, Any], Path], Path] | None = None,
) -> ModelSource:
    """Register ``resolve`` as ``model.source: <name>`` (a source module's last statement); the
    last registration of a name wins (a module run as ``python -m`` registers its own copy)."""
    source = ModelSource(name, resolve, planned_path)
    with _LOCK:
        _REGISTRY[name] = source
    return source


def model_source(name: str) -> ModelSource:
    """The source registered as ``name``, importing its module (:data:`SOURCE_MODULES`) first.

    Raises:
        ValueError: an unknown source.
    """
    source = _REGISTRY.get(name)
    if source is None and name in SOURCE_MODULES:
        importlib.import_module(SOURCE_MODULES[name])
        source = _REGISTRY.get(name)
    if source is None:
        known = (*SOURCES, *sorted(set(_REGISTRY) - set(SOURCES)))
        raise ValueError(f"model.source must be one of {known}, got {name!r}")
    return source


def resolve_model(cfg: Mapping[str, Any], cache_dir: str | Path) -> ResolvedModel:
    """Find the files of the model a ``model/`` config names, through the source its ``source``
    (default ``auto``) names.

    Args:
        cfg: ``name``, ``source`` (one of :data:`SOURCES`), ``hub_id``, optional
            ``local_path``, ``package`` (``module``, ``gguf_file``), or, for
            ``random_init``, ``architecture`` / ``config`` / ``tokenizer``, for ``pretrain``,
            ``architecture`` / ``config`` / ``pretrain`` (:mod:`sec.models.testbed`), for ``sft``,
            ``base`` / ``sft`` / ``prompt_format`` (:mod:`sec.models.warmup`).
        cache_dir: where built models are kept (under ``models/``).

    Raises:
        ValueError: for an unknown source.
        ModelSourceError: when no source can provide the model; the message names each one
            tried and why it failed.
    """
    return model_source(str(cfg.get("source", "auto"))).resolve(cfg, Path(cache_dir))


def planned_path(cfg: Mapping[str, Any], cache_dir: str | Path) -> str:
    """What :func:`resolve_model` would most likely return, without touching the network or
    writing files: ``local_path``, else the directory a building source (random, packaged,
    pre-trained, warm-up) builds into, else the hub id (``<cache_dir>/models/<name>`` without one)."""
    if cfg.get("local_path"):
        return str(cfg["local_path"])
    name = str(cfg.get("source", "auto"))
    source = _REGISTRY.get(name)
    if source is None and name in SOURCE_MODULES:
        source = model_source(name)
    if source is not None and source.planned_path is not None:
        return str(source.planned_path(cfg, Path(cache_dir)))
    if not cfg.get("hub_id"):
        return str(named_dir(cfg, cache_dir))
    return str(cfg["hub_id"])


def unavailable(cfg: Mapping[str, Any], tried: Sequence[str]) -> ModelSourceError:
    """The error of a source that tried ``tried`` (one reason each) and found nothing."""
    source = str(cfg.get("source", "auto"))
    return ModelSourceError(f"model {cfg.get('name')!r} (source={source}) could not be loaded: " + "; ".join(tried))


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


# --------------------------------------------------------------------------------------------- cache


def default_cache_dir() -> str:
    """``$SEC_CACHE_DIR``, else ``~/.cache/sec``."""
    return os.environ.get("SEC_CACHE_DIR") or str(Path.home() / ".cache" / "sec")


def models_dir(cache_dir: str | Path) -> Path:
    """Where built models are cached: ``<cache_dir>/models``."""
    return Path(cache_dir) / "models"


def named_dir(cfg: Mapping[str, Any], cache_dir: str | Path) -> Path:
    """The cache directory of a model built once per name: ``<cache_dir>/models/<name>``."""
    return models_dir(cache_dir) / str(cfg["name"])


def keyed_dir(cfg: Mapping[str, Any], cache_dir: str | Path, key: str) -> Path:
    """The cache directory of a model built once per setting: ``<cache_dir>/models/<name>-<key>``."""
    return models_dir(cache_dir) / f"{cfg['name']}-{key}"


def temp_dir(target: Path) -> Path:
    """The sibling of ``target`` that a build writes into before :func:`publish_dir` (per process)."""
    return target.with_name(target.name + f".tmp{os.getpid()}")


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


@contextlib.contextmanager
def build_lock(target: Path) -> Iterator[None]:
    """One builder per model: jobs of a sweep that start together wait for the first (``flock``
    on ``<target>.lock``)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic publish still keeps one copy
        yield
        return
    with open(target.with_name(target.name + ".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------- configs


def plain_config(cfg: Any) -> dict[str, Any]:
    """A model config (OmegaConf or plain mappings) as plain JSON values (resolved)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return json.loads(json.dumps(cfg, default=str))


def model_yaml(name: str) -> Any:
    """``conf/model/<name>.yaml`` with its defaults list resolved as Hydra does for a config of
    the ``model`` group (other model configs it extends, e.g. ``testbed_mini`` -> ``testbed_lm``;
    ``_self_`` where listed, else last)."""
    from omegaconf import OmegaConf

    raw = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    defaults = list(raw.pop("defaults", []) or [])
    parts = [raw if str(d) == "_self_" else model_yaml(str(d)) for d in defaults]
    if "_self_" not in [str(d) for d in defaults]:
        parts.append(raw)
    return OmegaConf.merge(*parts) if parts else raw


def default_config(name: str = "testbed_lm", overrides: Sequence[str] = ()) -> dict[str, Any]:
    """``conf/model/<name>.yaml`` with OmegaConf dotlist ``overrides`` (e.g. ``pretrain.steps=600``)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(model_yaml(name), OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------- command


def build_command(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    default_model: str,
    example: str,
    build: Callable[[dict[str, Any], str], Path],
    errors: tuple[type[Exception], ...],
) -> Path | None:
    """The ``build [--model NAME] [--cache-dir DIR] [key=value ...]`` command shared by the
    project's model builders (``python -m sec.models.testbed``, ``python -m sec.models.warmup``).

    Args:
        argv: the arguments after the program name (``None``: ``sys.argv[1:]``).
        prog, description: the program's name and help text.
        default_model: the ``conf/model/<name>.yaml`` used without ``--model``.
        example: one dotlist override shown in the help, e.g. ``pretrain.steps=600``.
        build: ``materialise(cfg, cache_dir) -> model directory``.
        errors: the exceptions that mean bad input: printed as one line to stderr.

    Returns:
        The model directory, or ``None`` after printing the error (the caller exits 1).
    """
    import argparse

    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("command", choices=["build"])
    ap.add_argument("overrides", nargs="*", help=f"OmegaConf dotlist over the model config, e.g. {example}")
    ap.add_argument("--model", default=default_model, help=f"conf/model/<name>.yaml (default {default_model})")
    ap.add_argument("--cache-dir", default=None, help="default: $SEC_CACHE_DIR or ~/.cache/sec")
    args = ap.parse_intermixed_args(argv)  # options before or after the overrides
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cache = args.cache_dir or default_cache_dir()
    try:
        return build(default_config(args.model, args.overrides), cache)
    except errors as e:
        print(f"{prog.removeprefix('python -m ')}: {e}", file=sys.stderr)
        return None
