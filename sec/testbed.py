"""The curriculum testbed's model: a ~1M-parameter Llama that this project pre-trains itself on bare
arithmetic prompts (``32-15=`` -> ``17</s>``), so that an RL step costs well under a second on a CPU
and rollout groups carry signal (docs/testbed.md).

The model is a standard transformers ``LlamaForCausalLM`` built from a config (``model.config``) with
a character-level ``PreTrainedTokenizerFast`` (:func:`build_tokenizer`), saved with
``save_pretrained``, so TRL, verl and ``AutoModelForCausalLM`` / ``AutoTokenizer`` load it like any
hub model. :func:`materialise` builds it once per setting: supervised pre-training (next-token
cross-entropy on the answer tokens only, AdamW, linear warm-up then cosine decay) on a mix of the
task's levels (``model.pretrain.mix``), problems drawn with reasoning-gym ``basic_arithmetic`` from
the level definitions of the task YAML it names (``model.pretrain.task``). Pre-training time is the
difficulty dial: more steps raise the pass rates of the levels the mix gives little weight to.

No test problem is ever trained on: the first ``pretrain.exclude_test_items`` test problems of every
test level (the task's test split is a prefix of them for any ``task.test_per_level`` up to that
number; :mod:`sec.tasks.puzzles` derives the test items from the task seed) are excluded, compared
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
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
    """Bare prompts (:func:`sec.tasks.puzzles.bare_arith_prompt`) of the first ``n`` test problems
    of every test level of ``task``, generated by :func:`sec.tasks.puzzles.generate_items` exactly as
    the task's test split is (same derived seed, same indices), so any test split with
    ``test_per_level <= n`` is inside this set."""
    from sec.tasks.puzzles import generate_items

    out: set[str] = set()
    for level in task["test_levels"]:
        rows = generate_items(
            str(task["name"]), "basic_arithmetic", int(level), task["levels"][int(level)], n, int(task["seed"]),
            "test", workers=1, progress=False, prompt_style="bare",
        )  # fmt: skip
        out |= {r["question"] for r in rows}
    return out


def _level_stream(task: Mapping[str, Any], level: int, seed: int, exclude: set[str]) -> Iterator[tuple[str, str]]:
    """Endless (bare prompt, answer) pairs of one level, reasoning-gym items 0, 1, ... of a dataset
    seeded for pre-training (never the train/test seeds), test expressions skipped."""
    import reasoning_gym

    from sec.tasks.puzzles import bare_arith_prompt, derive_seed

    kwargs = task["levels"][int(level)]
    ds = reasoning_gym.create_dataset(
        "basic_arithmetic", seed=derive_seed(seed, str(task["name"]), level, "pretrain"), size=2**31 - 1, **kwargs
    )
    i = 0
    while True:
        item = ds[i]
        i += 1
        prompt = bare_arith_prompt(item)
        if prompt not in exclude:
            yield prompt, str(item["answer"])


def _batches(
    task: Mapping[str, Any], mix: Mapping[int, float], seed: int, exclude: set[str], tok: Any, batch_size: int
) -> Iterator[tuple[Any, Any, Any]]:
    """Endless (input_ids, attention_mask, labels) batches, right-padded; each row's level drawn by
    ``mix``; labels are -100 on the prompt and padding (loss on the answer and EOS only)."""
    import torch

    rng = np.random.default_rng(seed)
    levels = list(mix)
    probs = np.array([mix[lv] for lv in levels])
    streams = {lv: _level_stream(task, lv, seed, exclude) for lv in levels}
    pad, eos = tok.pad_token_id, tok.eos_token_id
    while True:
        rows = []
        for lv in rng.choice(levels, size=batch_size, p=probs):
            prompt, answer = next(streams[int(lv)])
            p = tok(prompt, add_special_tokens=False)["input_ids"]
            a = tok(answer, add_special_tokens=False)["input_ids"] + [eos]
            rows.append((p + a, [-100] * len(p) + a))
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((batch_size, width), pad, dtype=torch.long)
        labels = torch.full((batch_size, width), -100, dtype=torch.long)
        mask = torch.zeros((batch_size, width), dtype=torch.long)
        for i, (x, y) in enumerate(rows):
            ids[i, : len(x)] = torch.tensor(x)
            labels[i, : len(y)] = torch.tensor(y)
            mask[i, : len(x)] = 1
        yield ids, mask, labels


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


def _lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to 0 at ``total``
    (the schedule of ``transformers.get_cosine_schedule_with_warmup``)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def pretrain(cfg: Mapping[str, Any], *, log_every: int = 100) -> tuple[Any, Any, dict[str, Any]]:
    """Build the model of ``cfg`` (a ``model/`` config with ``source: pretrain``) in memory.

    Returns:
        ``(model, tokenizer, record)``; ``record`` holds the settings, the loss every ``log_every``
        steps (``loss``: list of ``[step, mean loss]``) and ``seconds``.

    Raises:
        TestbedBuildError: a bad ``pretrain`` setting (one line naming it).
    """
    import torch

    cfg = _plain(cfg)
    p = cfg["pretrain"]
    task = task_config(str(p["task"]))
    mix = _mix(p, task)
    steps, batch_size, seed = int(p["steps"]), int(p["batch_size"]), int(p["seed"])
    if steps < 1 or batch_size < 1:
        raise TestbedBuildError(f"model.pretrain.steps and batch_size must be >= 1, got {steps}, {batch_size}")
    t0 = time.perf_counter()
    tok = build_tokenizer()
    exclude = excluded_expressions(task, int(p["exclude_test_items"]))
    model = new_model(cfg, tok, seed)
    model.train()
    opt = torch.optim.AdamW(
        model.parameters(), lr=float(p["learning_rate"]), betas=(0.9, 0.99), weight_decay=float(p["weight_decay"])
    )
    losses: list[list[float]] = []
    window: list[float] = []
    data = _batches(task, mix, seed, exclude, tok, batch_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(p["num_threads"]))
    try:
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, steps, int(p["warmup_steps"]), float(p["learning_rate"]))
            ids, mask, labels = next(data)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            window.append(float(loss.detach()))
            if (step + 1) % log_every == 0 or step + 1 == steps:
                losses.append([step + 1, float(np.mean(window))])
                log.info(
                    "pretrain step %d/%d loss %.4f (%.0fs)", step + 1, steps, losses[-1][1], time.perf_counter() - t0
                )
                window = []
    finally:
        torch.set_num_threads(threads)
    model.eval()
    n_params = sum(x.numel() for x in model.parameters())
    record = {
        "settings": cfg,
        "cache_key": cache_key(cfg),
        "parameters": int(n_params),
        "mix": {str(k): v for k, v in mix.items()},
        "excluded_test_expressions": len(exclude),
        "loss": losses,
        "seconds": time.perf_counter() - t0,
    }
    return model, tok, record


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


def materialise(cfg: Mapping[str, Any], cache_dir: str | Path) -> Path:
    """The cached model directory of ``cfg``, pre-training it first if it is not cached yet
    (minutes on one core; concurrent callers wait for one build).

    Raises:
        TestbedBuildError: a bad setting.
    """
    target = model_dir(cfg, cache_dir)
    if (target / PRETRAIN_RECORD).exists():
        return target
    with _build_lock(target):
        if (target / PRETRAIN_RECORD).exists():
            return target
        log.info("testbed model %s: not cached, pre-training it into %s", cfg["name"], target)
        model, tok, record = pretrain(cfg)
        save(model, tok, record, target)
        log.info("testbed model built in %.0fs (%d parameters)", record["seconds"], record["parameters"])
    return target


def default_config(name: str = "testbed_lm", overrides: Sequence[str] = ()) -> dict[str, Any]:
    """``conf/model/<name>.yaml`` with OmegaConf dotlist ``overrides`` (e.g. ``pretrain.steps=600``)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml"), OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sec.testbed build [--model NAME] [--cache-dir DIR] [key=value ...]``: build (or
    find) the testbed model and print its directory."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m sec.testbed", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["build"])
    ap.add_argument("overrides", nargs="*", help="OmegaConf dotlist over the model config, e.g. pretrain.steps=600")
    ap.add_argument("--model", default="testbed_lm", help="conf/model/<name>.yaml (default testbed_lm)")
    ap.add_argument("--cache-dir", default=None, help="default: $SEC_CACHE_DIR or ~/.cache/sec")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cache = args.cache_dir or os.environ.get("SEC_CACHE_DIR") or str(Path.home() / ".cache" / "sec")
    try:
        path = materialise(default_config(args.model, args.overrides), cache)
    except TestbedBuildError as e:
        print(f"sec.testbed: {e}", file=sys.stderr)
        return 1
    record = json.loads((path / PRETRAIN_RECORD).read_text())
    print(f"{path}  ({record['parameters']} parameters, pre-trained in {record['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
