"""Levelled tasks whose problems are generated (SEC.md §2): :class:`PuzzleTask`, the data side
shared by Countdown, Zebra, ARC-1D and Arith, each of which only adds its prompt, answer payload
and checker.

A task config (``conf/task/*.yaml``) maps each difficulty level to the generator's dataset-config
kwargs (reasoning-gym's, passed through to ``reasoning_gym.create_dataset(generator, seed=...,
size=..., **level_kwargs)``). :meth:`PuzzleTask.load_data` generates ``train_per_level`` items
for each train level and ``test_per_level`` items for each test level, in (split, level) shards
that an interrupted generation resumes, and caches them as one parquet file
``<cache_dir>/<name>/<key>.parquet`` whose ``key`` hashes everything that determines the content
(:meth:`PuzzleTask.cache_key`), so a changed config never reuses a stale file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from sec.tasks import cache, generation
from sec.tasks.records import RECORD_COLUMNS, TINYZERO_TEMPLATE, plain
from sec.tasks.registry import Task

__all__ = ["DATA_FORMAT_VERSION", "PuzzleTask"]

log = logging.getLogger("sec.tasks")

#: Bump when the record layout or generation logic changes (invalidates every cache).
DATA_FORMAT_VERSION = 2
#: The prompt texts data format 2 hashed into the key of every puzzle set (the three paper
#: tasks' prompts as they were then). Frozen so that existing caches keep their keys: a task's
#: own prompt texts (:attr:`PuzzleTask.prompt_texts`) are hashed after these unless they are
#: among them, so editing a prompt still changes its task's key.
_FORMAT_2_PROMPT_TEXTS = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic "
    "operations (+, -, *, /) and each number can only be used once. Show your work and put your final "
    "answer in \\boxed{{}}, e.g. \\boxed{{(1 + 2) / 3}}.",
    "Provide only the name of the person as your final answer in \\boxed{}, e.g. \\boxed{Alice}.",
    "Your final answer must be placed in \\boxed{} and should be just the test output grid itself.",
)
_REQUIRED = ("name", "levels", "train_levels", "test_levels", "train_per_level", "test_per_level", "seed")


def _as_level(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what}: level {value!r} is not an int")
    try:
        level = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: level {value!r} is not an int") from None
    if str(level) != str(value).strip():
        raise ValueError(f"{what}: level {value!r} is not an int")
    return level


def _positive_int(cfg: Mapping[str, Any], key: str, name: str) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"task {name!r}: {key} must be a positive int, got {value!r}")
    return value


def _level_list(cfg: Mapping[str, Any], key: str, name: str, levels: Mapping[int, Any]) -> list[int]:
    value = cfg[key]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"task {name!r}: {key} must be a list of levels, got {value!r}")
    out = [_as_level(v, f"task {name!r} {key}") for v in value]
    for level in out:
        if level not in levels:
            raise ValueError(f"task {name!r}: {key} has level {level}, missing from levels {sorted(levels)}")
    if len(set(out)) != len(out):
        raise ValueError(f"task {name!r}: {key} repeats a level: {out}")
    return sorted(out)


class PuzzleTask(Task):
    """A task generated level by level from a dataset (reasoning-gym's ``generator`` by default).

    Subclasses set :attr:`name`, :attr:`generator` and :attr:`prompt_texts` and implement
    :meth:`question` and :meth:`is_correct`; :meth:`answer_payload` and :meth:`make_dataset`
    have reasoning-gym defaults.
    """

    #: reasoning-gym dataset name (``reasoning_gym.create_dataset``); also the answer payload's ``generator``
    generator: ClassVar[str]
    #: the task's prompt texts, hashed into the cache key (a changed prompt is a new data set)
    prompt_texts: ClassVar[tuple[str, ...]] = ()
    #: the model's input around ``{question}`` (SEC.md §2: the TinyZero template)
    prompt_template: ClassVar[str] = TINYZERO_TEMPLATE

    @property
    def answer_key(self) -> str:  # type: ignore[override]
        return self.generator

    # ------------------------------------------------------------------ what a subclass defines
    def question(self, item: Mapping[str, Any]) -> str:
        """The paper's question text for one generated item (SEC.md §2)."""
        raise NotImplementedError

    def answer_payload(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """What :meth:`is_correct` needs, stored as the record's ``answer`` JSON: the generator and
        the reference ``answer`` (reasoning-gym's scorers read only ``entry["answer"]``)."""
        return {"generator": self.generator, "answer": str(item["answer"])}

    def rg_score(self, answer_text: str, answer: Mapping[str, Any]) -> float:
        """reasoning-gym's own ``score_answer`` of the generator on ``answer_text``, for a record's
        answer payload ``answer`` (1.0 = correct; some give partial credit below 1)."""
        entry = {"question": "", "answer": answer["answer"], "metadata": dict(answer.get("metadata") or {})}
        return float(_rg_scorer(self.generator)(answer_text, entry))

    def make_dataset(self, level_kwargs: Mapping[str, Any], seed: int) -> Any:
        """An indexable of items (dicts with ``question``, ``answer``, ``metadata``) for one level."""
        import reasoning_gym

        # size only bounds reasoning-gym's iteration; items are addressed by index.
        return reasoning_gym.create_dataset(self.generator, seed=seed, size=2**31 - 1, **dict(level_kwargs))

    def validate_level(self, name: str, level: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` if the generator's dataset config accepts them.

        Raises:
            ValueError: they set ``seed``/``size`` or reasoning-gym's config rejects them.
        """
        from reasoning_gym.factory import DATASETS

        for reserved in ("seed", "size"):
            if reserved in kwargs:
                raise ValueError(f"task {name!r}: level {level} must not set {reserved!r} (set by sec.tasks)")
        config_cls = DATASETS[self.generator][1]
        try:
            config = config_cls(**kwargs)
            config.validate()
        except (TypeError, AssertionError, ValueError) as exc:
            raise ValueError(
                f"task {name!r}: level {level} kwargs {kwargs} rejected by reasoning-gym {self.generator}: {exc}"
            ) from None
        return kwargs

    # ------------------------------------------------------------------ config and key
    def normalize(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Validated plain copy of the content-determining fields (levels keyed by int).

        Raises:
            ValueError: missing field, a ``generator`` other than this task's, bad/missing level,
                non-positive size, or level kwargs the generator's dataset config rejects.
        """
        missing = [k for k in _REQUIRED if k not in cfg]
        if missing:
            raise ValueError(f"task config is missing field(s) {missing}")
        name = cfg["name"]
        if cfg.get("generator", self.generator) != self.generator:
            raise ValueError(
                f"task {name!r}: unknown generator {cfg['generator']!r} (task {self.name} generates with "
                f"{self.generator!r}; leave `generator` out)"
            )
        raw_levels = cfg["levels"]
        if not isinstance(raw_levels, Mapping) or not raw_levels:
            raise ValueError(f"task {name!r}: levels must be a non-empty mapping level -> kwargs")
        levels: dict[int, dict[str, Any]] = {}
        for key, kwargs in raw_levels.items():
            level = _as_level(key, f"task {name!r} levels")
            if not isinstance(kwargs, Mapping):
                raise ValueError(f"task {name!r}: level {level} kwargs must be a mapping, got {kwargs!r}")
            if level in levels:
                raise ValueError(f"task {name!r}: level {level} defined twice")
            levels[level] = self.validate_level(name, level, plain(kwargs))
        train_levels = _level_list(cfg, "train_levels", name, levels)
        if not train_levels:
            raise ValueError(f"task {name!r}: train_levels is empty")
        seed = cfg["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"task {name!r}: seed must be an int, got {seed!r}")
        return {
            "name": name,
            "generator": self.generator,
            "levels": dict(sorted(levels.items())),
            "train_levels": train_levels,
            "test_levels": _level_list(cfg, "test_levels", name, levels),
            "train_per_level": _positive_int(cfg, "train_per_level", name),
            "test_per_level": _positive_int(cfg, "test_per_level", name),
            "seed": seed,
        }

    def key_payload(self, norm: Mapping[str, Any]) -> dict[str, Any]:
        """What the cache key hashes (and the manifest records), from a normalized config."""
        import reasoning_gym

        own = [t for t in self.prompt_texts if t not in _FORMAT_2_PROMPT_TEXTS]
        return {
            "data_format_version": DATA_FORMAT_VERSION,
            "reasoning_gym": reasoning_gym.__version__,
            "name": norm["name"],
            "generator": norm["generator"],
            "levels": {str(k): v for k, v in norm["levels"].items()},
            **{k: norm[k] for k in ("train_levels", "test_levels", "train_per_level", "test_per_level", "seed")},
            "templates": [TINYZERO_TEMPLATE, *_FORMAT_2_PROMPT_TEXTS, *own],
        }

    def cache_key(self, cfg: Mapping[str, Any]) -> str:
        """16-hex-digit SHA-256 of the canonical JSON of everything that determines the data:
        generator, levels, train/test levels and sizes, seed, task name, reasoning-gym version,
        :data:`DATA_FORMAT_VERSION` and the prompt texts. Not included: ``item_timeout_s`` /
        ``gen_workers`` (they do not change the items unless items time out, which is logged).

        Raises:
            ValueError: invalid config (see :meth:`normalize`).
        """
        payload = self.key_payload(self.normalize(cfg))
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ data
    def load_data(self, cfg: Mapping[str, Any], cache_dir: str | Path) -> pd.DataFrame:
        """Train rows (by level) then test rows (by level), generated once and cached.

        ``cfg`` may also set ``item_timeout_s`` (per-item CPU-time limit, default 30 s) and
        ``gen_workers`` (generator processes, default auto); other keys are ignored.

        Raises:
            ValueError: invalid config (one line naming the problem).
            sec.tasks.generation.ItemGenerationError: a level's generator keeps failing or timing out.
        """
        norm = self.normalize(cfg)
        path = cache.set_path(cache_dir, norm["name"], self.cache_key(norm))
        timeout_s, workers = _generation_settings(cfg)

        def build() -> tuple[pd.DataFrame, dict[str, Any]]:
            log.info("task %s: cache miss, generating %s", norm["name"], path)
            t0 = time.perf_counter()
            shard_dir = path.with_suffix(".shards")
            df, shards = self._generate(norm, timeout_s, workers, shard_dir)
            manifest = {
                **self.key_payload(norm),
                "cache_key": path.stem,
                "skipped_items": sum(int(e.get("skipped", 0)) for e in shards),
                "shards": shards,
                "seconds": time.perf_counter() - t0,
            }
            return df, manifest

        df, built = cache.cached_or_build(path, norm["name"], build)
        if built:
            shutil.rmtree(path.with_suffix(".shards"), ignore_errors=True)  # the combined file holds every shard
            log.info("task %s: generated %d rows -> %s", norm["name"], len(df), path)
        return df

    def _generate(
        self, cfg: Mapping[str, Any], timeout_s: float, workers: int | None, shard_dir: Path
    ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        """Generate every (split, level) shard, or read it back if an earlier (interrupted)
        generation already wrote it; the frame plus one manifest entry per shard."""
        shard_dir.mkdir(parents=True, exist_ok=True)
        entries: list[dict[str, Any]] = []

        def shard(split: str, level: int, n: int, exclude: set[str] | frozenset = frozenset()) -> list[dict]:
            rows, entry = self._shard(cfg, shard_dir, split, level, n, exclude, timeout_s, workers)
            entries.append(entry)
            return rows

        test_rows = [r for lv in cfg["test_levels"] for r in shard("test", lv, cfg["test_per_level"])]
        # a train item whose question is also a test question is replaced (never trained on test)
        exclude = {r["question"] for r in test_rows}
        train_rows = [r for lv in cfg["train_levels"] for r in shard("train", lv, cfg["train_per_level"], exclude)]
        df = pd.DataFrame(train_rows + test_rows, columns=list(RECORD_COLUMNS))
        df["level"] = df["level"].astype("int64")
        if df["id"].duplicated().any():  # cannot happen: ids embed split/level/position
            raise AssertionError("duplicate record ids")
        return df, entries

    def _shard(
        self,
        cfg: Mapping[str, Any],
        shard_dir: Path,
        split: str,
        level: int,
        n: int,
        exclude: set[str] | frozenset,
        timeout_s: float,
        workers: int | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One (split, level) shard: generated into ``shard_dir``, or read back if an earlier
        (interrupted) generation or an array task already wrote it; its rows and manifest entry."""
        path = shard_dir / f"{split}-L{level}.parquet"
        stats_path = shard_dir / f"{split}-L{level}.stats.json"  # the generation stats, kept for a read-back
        partial = cache.Partial(shard_dir / f"{split}-L{level}.partial")
        resume = None if path.exists() else partial.load()
        stats: dict[str, Any] = {"resumed": path.exists() or resume is not None}
        if path.exists():
            rows = pd.read_parquet(path).to_dict("records")
            with contextlib.suppress(OSError, ValueError):  # none from a version without the stats file
                stats.update({k: v for k, v in json.loads(stats_path.read_text()).items() if k != "resumed"})
            log.info("task %s: %s L%d shard read back from %s (resumed)", cfg["name"], split, level, path)
        else:
            shard_dir.mkdir(parents=True, exist_ok=True)  # the progress saves go there too
            rows = generation.generate_items(
                self, level, cfg["levels"][level], n, cfg["seed"], split, exclude_questions=exclude,
                item_timeout_s=timeout_s, workers=workers, stats=stats, resume=resume, on_progress=partial.save,
            )  # fmt: skip
            frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
            cache.atomic_write(path, lambda p: frame.to_parquet(p, index=False))
            cache.atomic_write(stats_path, lambda p: p.write_text(json.dumps(stats)))
            partial.remove()
        entry = {
            "split": split,
            "level": level,
            "rows": len(rows),
            "seed": generation.derive_seed(cfg["seed"], cfg["name"], level, split),
            "file": path.name,
            "sha256": cache.sha256(path),
            **stats,
        }
        return rows, entry

    def shard_plan(self, cfg: Mapping[str, Any]) -> list[tuple[str, int]]:
        """Every test shard, then every train shard (train items equal to a test item are
        replaced, so the train shards read the test shards).

        Raises:
            ValueError: invalid config.
        """
        norm = self.normalize(cfg)
        return [("test", lv) for lv in norm["test_levels"]] + [("train", lv) for lv in norm["train_levels"]]

    def generate_shard(self, cfg: Mapping[str, Any], cache_dir: str | Path, split: str, level: int) -> int:
        """Generate one (split, level) shard into the shard directory :meth:`load_data` resumes
        from; nothing when the shard or the whole set exists. Returns the shard's rows (0 then).

        Raises:
            ValueError: invalid config, split or level.
            FileNotFoundError: a train shard is asked for before every test shard exists.
        """
        norm = self.normalize(cfg)
        if (split, level) not in self.shard_plan(norm):
            raise ValueError(f"task {norm['name']!r}: no shard ({split!r}, {level}); shards: {self.shard_plan(norm)}")
        path = cache.set_path(cache_dir, norm["name"], self.cache_key(norm))
        if path.exists():
            return 0
        shard_dir = path.with_suffix(".shards")
        exclude: set[str] = set()
        if split == "train":
            for lv in norm["test_levels"]:
                test_shard = shard_dir / f"test-L{lv}.parquet"
                if not test_shard.exists():
                    raise FileNotFoundError(f"{test_shard} missing: the test shards must exist before the train shards")
                exclude |= set(pd.read_parquet(test_shard, columns=["question"])["question"])
        n = norm["test_per_level"] if split == "test" else norm["train_per_level"]
        rows, _ = self._shard(norm, shard_dir, split, level, n, exclude, *_generation_settings(cfg))
        return len(rows)

    def check_data(self, cfg: Mapping[str, Any], cache_dir: str | Path) -> str:
        """``"ok"``, ``"missing"``, ``"corrupt: ..."`` (checksum differs from the manifest) or
        ``"stale: ..."`` (only data generated with another reasoning-gym or data-format version
        exists for this config).

        Raises:
            ValueError: invalid config.
        """
        norm = self.normalize(cfg)
        path = cache.set_path(cache_dir, norm["name"], self.cache_key(norm))
        state = cache.check_cached(path)
        if state is not None:
            return state
        expected = self.key_payload(norm)
        versions = ("reasoning_gym", "data_format_version")
        for other in sorted(path.parent.glob("*.json")):
            try:
                manifest = json.loads(other.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            same_config = all(manifest.get(k) == v for k, v in expected.items() if k not in versions)
            if same_config and any(manifest.get(k) != expected[k] for k in versions):
                return (
                    f"stale: {other.with_suffix('.parquet').name} was generated with reasoning-gym "
                    f"{manifest.get('reasoning_gym')} (data format {manifest.get('data_format_version')}), "
                    f"installed {expected['reasoning_gym']} (data format {expected['data_format_version']})"
                )
        return "missing"


@functools.cache
def _rg_scorer(generator: str) -> Callable[[str | None, dict[str, Any]], float]:
    import reasoning_gym

    return reasoning_gym.get_score_answer_fn(generator)


def _generation_settings(cfg: Mapping[str, Any]) -> tuple[float, int | None]:
    """``(item_timeout_s, gen_workers)`` of a task config (generation settings, not hashed)."""
    workers = cfg.get("gen_workers")
    timeout_s = float(cfg.get("item_timeout_s", generation.DEFAULT_ITEM_TIMEOUT_S))
    return timeout_s, None if workers is None else int(workers)
