"""The curriculum testbed's model: a ~1M-parameter Llama that this project pre-trains itself on bare
arithmetic prompts (``32-15=`` -> ``17</s>``), so that an RL step costs well under a second on a CPU
and rollout groups carry signal (docs/testbed.md).

The model is a standard transformers ``LlamaForCausalLM`` built from a config (``model.config``) with
a character-level ``PreTrainedTokenizerFast`` (:func:`build_tokenizer`), saved with
``save_pretrained``, so TRL, verl and ``AutoModelForCausalLM`` / ``AutoTokenizer`` load it like any
hub model. :func:`materialise` builds it once per setting: supervised pre-training (next-token
cross-entropy on the answer tokens only, AdamW, warm-up / constant / cosine decay;
:mod:`sec.testbed_train`) on a mix of the task's levels (``model.pretrain.mix``), problems drawn with
reasoning-gym ``basic_arithmetic`` from the level definitions of the task YAML it names
(``model.pretrain.task``). Pre-training time is the difficulty dial: more steps raise the pass rates
of the levels the mix gives little weight to; one pass builds several points of it.

No test problem is ever trained on: the first ``pretrain.exclude_test_items`` test problems of every
test level (the task's test split is a prefix of them for any ``task.test_per_level`` up to that
number; :mod:`sec.tasks.generation` derives the test items from the task seed) are excluded, compared
by expression.

Deterministic from ``pretrain.seed`` (weights, data order; CPU, fixed ``pretrain.num_threads``).
Cached under ``<cache_dir>/models/<name>-<key>``, ``key`` hashing everything that determines the
weights (:func:`cache_key`); a ``pretrain.json`` beside the weights records the settings, the loss
curve and the build time.

    python -m sec.testbed build                       # the default testbed model (conf/model/testbed_lm.yaml)
    python -m sec.testbed build pretrain.steps=600    # another point on the dial (OmegaConf dotlist)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("sec.testbed")

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
#: bump when the pre-training procedure changes (invalidates every cached testbed model)
BUILD_VERSION = 1
#: special tokens, in id order: pad 0, bos 1, eos 2, unk 3
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
#: the characters of the vocabulary after the special tokens (bare arithmetic prompts and answers)
CHARS = "0123456789+-*/=() "
#: marker of a finished build (written last)
PRETRAIN_RECORD = "pretrain.json"


class TestbedBuildError(RuntimeError):
    """The testbed model cannot be built from its config (one line naming the key)."""


# --------------------------------------------------------------------------------------------- tokens


def build_tokenizer() -> Any:
    """The character-level tokenizer: one token per character of :data:`CHARS`, the
    :data:`SPECIAL_TOKENS` first (pad 0, bos 1, eos 2, unk 3), anything else ``<unk>``; no token is
    added around a text (no BOS), decoding joins characters without spaces.

    Returns:
        a ``transformers.PreTrainedTokenizerFast`` (22 tokens), left padding.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *CHARS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    pad, bos, eos, unk = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=pad, bos_token=bos, eos_token=eos, unk_token=unk, padding_side="left"
    )


# --------------------------------------------------------------------------------------------- config


def task_config(name: str) -> dict[str, Any]:
    """The task YAML ``conf/task/<name>.yaml`` the model pre-trains on, as a plain dict.

    Raises:
        TestbedBuildError: no such file, or not a ``basic_arithmetic`` task.
    """
    from omegaconf import OmegaConf

    path = CONF_DIR / "task" / f"{name}.yaml"
    if not path.exists():
        raise TestbedBuildError(f"model.pretrain.task={name!r}: no {path}")
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(cfg, dict) or cfg.get("generator") != "basic_arithmetic":
        raise TestbedBuildError(f"model.pretrain.task={name!r}: the testbed pre-trains on basic_arithmetic tasks")
    cfg["levels"] = {int(k): v for k, v in cfg["levels"].items()}
    return cfg


def _plain(cfg: Any) -> dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return json.loads(json.dumps(cfg, default=str))


def _mix(pretrain: Mapping[str, Any], task: Mapping[str, Any]) -> dict[int, float]:
    """``pretrain.mix`` as level -> share (normalised); every level must exist in the task."""
    raw = {int(k): float(v) for k, v in dict(pretrain["mix"]).items()}
    levels = {int(k) for k in task["levels"]}
    unknown = sorted(set(raw) - levels)
    if unknown:
        raise TestbedBuildError(f"model.pretrain.mix has levels {unknown} that task {task['name']} lacks")
    total = sum(v for v in raw.values() if v > 0)
    if any(v < 0 for v in raw.values()) or total <= 0:
        raise TestbedBuildError(f"model.pretrain.mix needs non-negative shares with a positive sum, got {raw}")
    return {k: v / total for k, v in sorted(raw.items()) if v > 0}


def cache_key(cfg: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over everything that determines the weights: the architecture
    config, the pre-training settings (not the thread count's effect on speed), the level
    definitions, seed and test-level list of the task it pre-trains on, the vocabulary and
    :data:`BUILD_VERSION`."""
    cfg = _plain(cfg)
    task = task_config(str(cfg["pretrain"]["task"]))
    payload = {
        "version": BUILD_VERSION,
        "architecture": cfg["architecture"],
        "config": cfg["config"],
        "pretrain": cfg["pretrain"],
        "task": {k: task[k] for k in ("name", "generator", "levels", "test_levels", "seed")},
        "vocab": [*SPECIAL_TOKENS, CHARS],
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_dir(cfg: Mapping[str, Any], cache_dir: str | Path) -> Path:
    """Where the model of ``cfg`` is (or will be) cached: ``<cache_dir>/models/<name>-<key>``."""
    return Path(cache_dir) / "models" / f"{cfg['name']}-{cache_key(cfg)}"


# --------------------------------------------------------------------------------------------- data


def excluded_expressions(task: Mapping[str, Any], n: int) -> set[str]:
    """Bare prompts (:func:`sec.tasks.arith_bare.bare_arith_prompt`) of the first ``n`` test problems
    of every test level of ``task``, generated by :func:`sec.tasks.generation.generate_items` exactly as
    the task's test split is (same derived seed, same indices), so any test split with
    ``test_per_level <= n`` is inside this set."""
    from sec.tasks.generation import generate_items

    out: set[str] = set()
    for level in task["test_levels"]:
        rows = generate_items(
            str(task["name"]), int(level), task["levels"][int(level)], n, int(task["seed"]), "test",
            workers=1, progress=False,
        )  # fmt: skip
        out |= {r["question"] for r in rows}
    return out


# --------------------------------------------------------------------------------------------- build


def new_model(cfg: Mapping[str, Any], tok: Any, seed: int) -> Any:
    """A freshly initialised model of ``cfg.architecture`` (a transformers config class name) with
    ``cfg.config`` and the tokenizer's vocabulary and special ids; weights from ``torch.manual_seed(seed)``."""
    import torch
    import transformers

    config_cls = getattr(transformers, str(cfg["architecture"]), None)
    if config_cls is None:
        raise TestbedBuildError(f"model.architecture={cfg['architecture']!r} is not a transformers config class")
    config = config_cls(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **dict(cfg["config"]),
    )
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(config)


def _settings(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[int, float]]:
    """``(plain cfg, task config, mix)`` of a ``source: pretrain`` model config.

    Raises:
        TestbedBuildError: a bad ``pretrain`` setting.
    """
    cfg = _plain(cfg)
    p = cfg["pretrain"]
    task = task_config(str(p["task"]))
    mix = _mix(p, task)
    if int(p["steps"]) < int(p["warmup_steps"]) + int(p["decay_steps"]) or int(p["batch_size"]) < 1:
        raise TestbedBuildError(
            f"model.pretrain.steps ({p['steps']}) must be >= warmup_steps + decay_steps "
            f"({p['warmup_steps']} + {p['decay_steps']}) and batch_size >= 1 (got {p['batch_size']})"
        )
    return cfg, task, mix


def pretrain(cfg: Mapping[str, Any], *, steps: Sequence[int] | None = None, log_every: int = 100) -> dict[int, Any]:
    """Build the model of ``cfg`` (a ``model/`` config with ``source: pretrain``) in memory, and the
    same model at the other totals ``steps`` in the same pass (:func:`sec.testbed_train.pretrain_many`).

    Returns:
        total steps -> ``(model, tokenizer, record)``; ``record`` holds the settings (with that
        total), the cache key, the parameter count, the mix, the loss every ``log_every`` steps
        (``[[step, mean loss], ...]``) and ``seconds`` (of the pass up to that model).

    Raises:
        TestbedBuildError: a bad ``pretrain`` setting (one line naming it).
    """
    from sec.testbed_train import PretrainData, pretrain_many

    cfg, task, mix = _settings(cfg)
    p = cfg["pretrain"]
    totals = sorted({int(p["steps"]), *(int(n) for n in steps or ())})
    t0 = time.perf_counter()
    tok = build_tokenizer()
    exclude = excluded_expressions(task, int(p["exclude_test_items"]))
    data = PretrainData(task, mix, int(p["seed"]), exclude, tok, int(p["batch_size"]))
    model = new_model(cfg, tok, int(p["seed"]))
    n_params = int(sum(x.numel() for x in model.parameters()))
    setup_s = time.perf_counter() - t0
    try:
        built = pretrain_many(model, data, totals, p, log_every=log_every)
    except ValueError as e:
        raise TestbedBuildError(str(e)) from None
    out = {}
    for total, (m, curve, seconds) in built.items():
        settings = {**cfg, "pretrain": {**p, "steps": total}}
        record = {
            "settings": settings,
            "cache_key": cache_key(settings),
            "parameters": n_params,
            "mix": {str(k): v for k, v in mix.items()},
            "excluded_test_expressions": len(exclude),
            "loss": curve,
            "seconds": setup_s + seconds,
        }
        out[total] = (m, tok, record)
    return out


def save(model: Any, tok: Any, record: Mapping[str, Any], target: Path) -> None:
    """Write model, tokenizer and the pre-training record into ``target`` (atomically: a temporary
    sibling moved into place, :func:`sec.models.publish_dir`). The tokenizer config names the
    portable ``PreTrainedTokenizerFast`` class, which every transformers version loads."""
    from sec.models import publish_dir

    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tc = tmp / "tokenizer_config.json"
    tc.write_text(json.dumps({**json.loads(tc.read_text()), "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))
    (tmp / PRETRAIN_RECORD).write_text(json.dumps(record, indent=1))
    publish_dir(tmp, target)


@contextlib.contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    """One builder per model: jobs of a sweep that start together wait for the first (``flock``)."""
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


def materialise(cfg: Mapping[str, Any], cache_dir: str | Path, *, steps: Sequence[int] = ()) -> Path:
    """The cached model directory of ``cfg``, pre-training it first if it is not cached yet
    (minutes on one core; concurrent callers wait for one build). ``steps``: other totals of the
    dial built (and cached) in the same pass when missing, e.g. by the probe.

    Raises:
        TestbedBuildError: a bad setting.
    """
    cfg = _plain(cfg)
    target = model_dir(cfg, cache_dir)

    def with_steps(n: int) -> dict[str, Any]:
        return {**cfg, "pretrain": {**cfg["pretrain"], "steps": int(n)}}

    wanted = {int(cfg["pretrain"]["steps"]), *(int(n) for n in steps)}
    if all(_built(model_dir(with_steps(n), cache_dir)) for n in wanted):
        return target
    with _build_lock(target):
        missing = [n for n in wanted if not _built(model_dir(with_steps(n), cache_dir))]
        if missing:
            log.info("testbed model %s: pre-training %s steps into %s", cfg["name"], sorted(missing), target.parent)
            for total, (model, tok, record) in pretrain(with_steps(min(missing)), steps=missing).items():
                save(model, tok, record, model_dir(with_steps(total), cache_dir))
                log.info("testbed model (%d steps) built in %.0fs (%d parameters)", total, record["seconds"],
                         record["parameters"])  # fmt: skip
    return target


def _built(path: Path) -> bool:
    return (path / PRETRAIN_RECORD).exists()


def _model_yaml(name: str) -> Any:
    """``conf/model/<name>.yaml`` with its defaults list resolved as Hydra does for a config of
    the ``model`` group (other model configs it extends, e.g. ``testbed_mini`` -> ``testbed_lm``;
    ``_self_`` where listed, else last)."""
    from omegaconf import OmegaConf

    raw = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    defaults = list(raw.pop("defaults", []) or [])
    parts = [raw if str(d) == "_self_" else _model_yaml(str(d)) for d in defaults]
    if "_self_" not in [str(d) for d in defaults]:
        parts.append(raw)
    return OmegaConf.merge(*parts) if parts else raw


def default_config(name: str = "testbed_lm", overrides: Sequence[str] = ()) -> dict[str, Any]:
    """``conf/model/<name>.yaml`` with OmegaConf dotlist ``overrides`` (e.g. ``pretrain.steps=600``)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(_model_yaml(name), OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


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
    project's model builders (``python -m sec.testbed``, ``python -m sec.warmup``).

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
    cache = args.cache_dir or os.environ.get("SEC_CACHE_DIR") or str(Path.home() / ".cache" / "sec")
    try:
        return build(default_config(args.model, args.overrides), cache)
    except errors as e:
        print(f"{prog.removeprefix('python -m ')}: {e}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sec.testbed build [--model NAME] [--cache-dir DIR] [key=value ...]``: build (or
    find) the testbed model and print its directory."""
    path = build_command(
        argv,
        prog="python -m sec.testbed",
        description=__doc__.split("\n\n")[0],
        default_model="testbed_lm",
        example="pretrain.steps=600",
        build=materialise,
        errors=(TestbedBuildError,),
    )
    if path is None:
        return 1
    record = json.loads((path / PRETRAIN_RECORD).read_text())
    print(f"{path}  ({record['parameters']} parameters, pre-trained in {record['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
