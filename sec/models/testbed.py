"""The curriculum testbed's model: a ~1M-parameter Llama that this project pre-trains itself on bare
arithmetic prompts (``32-15=`` -> ``17</s>``), so that an RL step costs well under a second on a CPU
and rollout groups carry signal (docs/testbed.md).

The model is a standard transformers ``LlamaForCausalLM`` built from a config (``model.config``) with
a character-level ``PreTrainedTokenizerFast`` (:func:`build_tokenizer`), saved with
``save_pretrained``, so TRL, verl and ``AutoModelForCausalLM`` / ``AutoTokenizer`` load it like any
hub model. :func:`materialise` builds it once per setting: supervised pre-training (next-token
cross-entropy on the answer tokens only, AdamW, warm-up / constant / cosine decay;
:mod:`sec.models.testbed_train`) on a mix of the task's levels (``model.pretrain.mix``), problems drawn with
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

``model.source: pretrain`` (:func:`sec.models.resolve_model`) builds it on first use; or

    python -m sec.models.testbed build                     # the default testbed model (conf/model/testbed_lm.yaml)
    python -m sec.models.testbed build pretrain.steps=600  # another point on the dial (OmegaConf dotlist)
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sec.models.core import (
    ResolvedModel,
    build_command,
    build_lock,
    keyed_dir,
    plain_config,
    publish_dir,
    register_source,
    temp_dir,
)
from sec.models.testbed_train import (
    PretrainData,
    TestbedBuildError,
    excluded_expressions,
    level_mix,
    pretrain_many,
    task_config,
)

log = logging.getLogger("sec.testbed")

#: bump when the pre-training procedure changes (invalidates every cached testbed model)
BUILD_VERSION = 1
#: special tokens, in id order: pad 0, bos 1, eos 2, unk 3
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
#: the characters of the vocabulary after the special tokens (bare arithmetic prompts and answers)
CHARS = "0123456789+-*/=() "
#: marker of a finished build (written last)
PRETRAIN_RECORD = "pretrain.json"


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


def cache_key(cfg: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over everything that determines the weights: the architecture
    config, the pre-training settings (not the thread count's effect on speed), the level
    definitions, seed and test-level list of the task it pre-trains on, the vocabulary and
    :data:`BUILD_VERSION`."""
    cfg = plain_config(cfg)
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
    return keyed_dir(cfg, cache_dir, cache_key(cfg))


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
    cfg = plain_config(cfg)
    p = cfg["pretrain"]
    task = task_config(str(p["task"]))
    mix = level_mix(p, task)
    if int(p["steps"]) < int(p["warmup_steps"]) + int(p["decay_steps"]) or int(p["batch_size"]) < 1:
        raise TestbedBuildError(
            f"model.pretrain.steps ({p['steps']}) must be >= warmup_steps + decay_steps "
            f"({p['warmup_steps']} + {p['decay_steps']}) and batch_size >= 1 (got {p['batch_size']})"
        )
    return cfg, task, mix


def pretrain(cfg: Mapping[str, Any], *, steps: Sequence[int] | None = None, log_every: int = 100) -> dict[int, Any]:
    """Build the model of ``cfg`` (a ``model/`` config with ``source: pretrain``) in memory, and the
    same model at the other totals ``steps`` in the same pass (:func:`sec.models.testbed_train.pretrain_many`).

    Returns:
        total steps -> ``(model, tokenizer, record)``; ``record`` holds the settings (with that
        total), the cache key, the parameter count, the mix, the loss every ``log_every`` steps
        (``[[step, mean loss], ...]``) and ``seconds`` (of the pass up to that model).

    Raises:
        TestbedBuildError: a bad ``pretrain`` setting (one line naming it).
    """
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
    sibling moved into place, :func:`sec.models.core.publish_dir`). The tokenizer config names the
    portable ``PreTrainedTokenizerFast`` class, which every transformers version loads."""
    tmp = temp_dir(target)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tc = tmp / "tokenizer_config.json"
    tc.write_text(json.dumps({**json.loads(tc.read_text()), "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))
    (tmp / PRETRAIN_RECORD).write_text(json.dumps(record, indent=1))
    publish_dir(tmp, target)


def materialise(cfg: Mapping[str, Any], cache_dir: str | Path, *, steps: Sequence[int] = ()) -> Path:
    """The cached model directory of ``cfg``, pre-training it first if it is not cached yet
    (minutes on one core; concurrent callers wait for one build). ``steps``: other totals of the
    dial built (and cached) in the same pass when missing, e.g. by the probe.

    Raises:
        TestbedBuildError: a bad setting.
    """
    cfg = plain_config(cfg)
    target = model_dir(cfg, cache_dir)

    def with_steps(n: int) -> dict[str, Any]:
        return {**cfg, "pretrain": {**cfg["pretrain"], "steps": int(n)}}

    wanted = {int(cfg["pretrain"]["steps"]), *(int(n) for n in steps)}
    if all(built(model_dir(with_steps(n), cache_dir)) for n in wanted):
        return target
    with build_lock(target):
        missing = [n for n in wanted if not built(model_dir(with_steps(n), cache_dir))]
        if missing:
            log.info("testbed model %s: pre-training %s steps into %s", cfg["name"], sorted(missing), target.parent)
            for total, (model, tok, record) in pretrain(with_steps(min(missing)), steps=missing).items():
                save(model, tok, record, model_dir(with_steps(total), cache_dir))
                log.info("testbed model (%d steps) built in %.0fs (%d parameters)", total, record["seconds"],
                         record["parameters"])  # fmt: skip
    return target


def built(path: Path) -> bool:
    """Whether ``path`` holds a finished build (its record is written last)."""
    return (path / PRETRAIN_RECORD).exists()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sec.models.testbed build [--model NAME] [--cache-dir DIR] [key=value ...]``: build (or
    find) the testbed model and print its directory."""
    path = build_command(
        argv,
        prog="python -m sec.models.testbed",
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


def resolve_pretrain(cfg: Mapping[str, Any], cache_dir: Path) -> ResolvedModel:
    return ResolvedModel(str(materialise(cfg, cache_dir)), "pretrain")


register_source("pretrain", resolve_pretrain, planned_path=model_dir)

if __name__ == "__main__":
    sys.exit(main())
