"""The parts of the verl backend that run inside verl's trainer (loaded by verl from the
config: ``data.custom_cls`` and ``reward.custom_reward_function``, as ``pkg://`` modules).

* :class:`SECDataset` — verl's ``RLHFDataset`` over the training problems whose items are
  *slots*: slot ``(t - 1) * B + j`` is the j-th problem of step t, drawn from the curriculum when
  the data loader asks for the step's first slot. verl's legacy ``RayPPOTrainer.fit`` calls
  ``on_batch_end(batch)`` after every step but the last, with the step's ``advantages`` and
  ``response_mask``; the dataset feeds their token-mean |A| to the curriculum (the same
  :class:`sec.backends.feed.CurriculumFeed` the TRL backend uses) before the next draw,
  writes the step's curriculum metrics and, when verl checkpointed this step, the curriculum
  state into the checkpoint directory. The validation set uses the same class and behaves as
  a plain ``RLHFDataset``.
* :func:`compute_score` — the reward (SEC.md §2) from the decoded response, the answer and
  the row's ``extra_info``.

Settings come from ``sec_spec.json`` beside the training parquet (written by
:mod:`sec.backends.verl`), so no key outside verl's own config is needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from verl.utils.dataset.rl_dataset import RLHFDataset

from sec import rundir
from sec.backends.feed import CurriculumFeed, token_mean_abs
from sec.curriculum import arms_of_records, build_curriculum
from sec.tasks import puzzle_reward

SPEC = "sec_spec.json"
TRACKER = "latest_checkpointed_iteration.txt"


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: Mapping[str, Any] | None = None, **_: Any
) -> dict[str, float]:
    """verl custom reward function (``reward.custom_reward_function``).

    Args:
        data_source: ``<task>/level_<k>`` (unused: the task comes from ``extra_info``).
        solution_str: the decoded response only (verl does not pass the prompt).
        ground_truth: the record's answer JSON (:func:`sec.tasks.rewards.is_correct`).
        extra_info: the row's ``extra_info`` (``task``, ``format_reward``, ``answer_extraction``).

    Returns:
        ``{"score": r, "acc": c}``: ``score`` is the training reward (1 correct,
        ``format_reward`` boxed but wrong, else 0; SEC.md §2), ``acc`` the validation score
        (1 / 0) that verl averages into ``val-core/<data_source>/acc/mean@k`` (pass@1).
    """
    info = dict(extra_info or {})
    record = {"task": info.get("task") or str(data_source).split("/")[0], "answer": ground_truth}
    how = str(info.get("answer_extraction") or "boxed")
    fmt = float(info.get("format_reward", 0.1))
    score = puzzle_reward(solution_str, record, train=True, format_reward=fmt, extraction=how)
    acc = puzzle_reward(solution_str, record, train=False, extraction=how)
    return {"score": float(score), "acc": float(acc)}


def _spec_of(data_files: Any) -> dict[str, Any] | None:
    files = [str(f) for f in (data_files if isinstance(data_files, (list, tuple)) else list(data_files))]
    if len(files) != 1:
        return None
    path = Path(files[0]).with_name(SPEC)
    if not path.exists():
        return None
    spec = json.loads(path.read_text())
    return spec if Path(spec["train_file"]).resolve() == Path(files[0]).resolve() else None


class SECDataset(RLHFDataset):
    """verl dataset whose training items the curriculum chooses (see module doc).

    Args: those of ``verl.utils.dataset.rl_dataset.RLHFDataset`` (verl constructs it).

    Raises:
        ValueError: if ``data.dataloader_num_workers`` is not 0 or ``data.shuffle`` is true
            (the curriculum must see step t's feedback before step t+1 is drawn, in order).
        FileNotFoundError: if a checkpoint to resume from lacks the curriculum state.
    """

    def __init__(self, data_files: Any, tokenizer: Any, config: Any, processor: Any = None, max_samples: int = -1):
        super().__init__(data_files, tokenizer, config, processor=processor, max_samples=max_samples)
        spec = _spec_of(self.original_data_files)
        self.is_train = spec is not None
        if spec is None:
            return
        if int(config.get("dataloader_num_workers", 0)) != 0:
            raise ValueError(
                "data.dataloader_num_workers must be 0 with the SEC curriculum (workers would draw ahead of feedback)"
            )
        if config.get("shuffle", False):
            raise ValueError("data.shuffle must be false with the SEC curriculum (slots are taken in step order)")
        self.spec = spec
        df = self.dataframe.to_pandas()
        problems = df.drop(columns=["prompt", "reward_model", "extra_info"], errors="ignore").to_dict("records")
        cur = spec["curriculum"]
        self.policy = build_curriculum(
            cur,
            arms_of_records(problems, list(cur["arm_fields"])),
            total_steps=int(spec["total_steps"]),
            seed=int(spec["seed"]),
        )
        self.feed = CurriculumFeed(self.policy, problems)
        self.batch_size = int(spec["batch_size"])
        self.total_steps = int(spec["total_steps"])
        self.checkpoint_dir = Path(spec["checkpoint_dir"])
        self.log_path = Path(spec["curriculum_log"])
        self.step = 0  # the step whose problems were drawn last
        self.pending: int | None = None  # a drawn step still waiting for its feedback
        self.drawn = np.zeros(0, dtype=np.int64)
        self.resumed_from = self._resume()

    # ------------------------------------------------------------------ resume
    def _resume(self) -> int:
        """Load the curriculum state of the checkpoint verl resumes from (the same tracker
        file ``RayPPOTrainer._load_checkpoint`` reads with ``resume_mode=auto``)."""
        tracker = self.checkpoint_dir / TRACKER
        if not tracker.exists():
            return 0
        step = int(tracker.read_text().strip())
        rundir.load_curriculum_state(self.checkpoint_dir / f"global_step_{step}", self.policy)
        self.step = step
        return step

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        if not self.is_train:
            return super().__len__()
        return self.total_steps * self.batch_size

    def __getitem__(self, item: int) -> dict[str, Any]:
        if not self.is_train:
            return super().__getitem__(item)
        step, pos = divmod(int(item), self.batch_size)
        step += 1
        if step != self.step or self.drawn.size == 0:
            self._draw(step)
        row = super().__getitem__(int(self.drawn[pos]))
        row["extra_info"] = {**row["extra_info"], "sec_problem": int(self.drawn[pos]), "sec_step": step}
        return row

    def _draw(self, step: int) -> None:
        if self.pending is not None:
            raise RuntimeError(
                f"step {step} is drawn before the curriculum took step {self.pending}'s advantages "
                "(verl must call on_batch_end in between: data.dataloader_num_workers=0, trainer.use_v1=false)"
            )
        # the values the batch is drawn with (q), the distribution (prob), the sampled
        # difficulty, and the counts after the draw; the update record replaces q and counts
        before = self.policy.stats()
        self.drawn = self.feed.draw(self.batch_size)
        record: dict[str, Any] = {"step": step, "phase": "draw"}
        record.update({k: v for k, v in before.items() if not k.endswith(("/count", "/prob"))})
        record.update(self.feed.pop_stats())
        record.update({k: v for k, v in self.policy.stats().items() if k.endswith("/count")})
        self._log(record)
        self.step = step
        self.pending = step

    # ------------------------------------------------------------------ feedback
    def on_batch_end(self, batch: Any) -> None:
        """Feed one step's rollouts back (verl calls it after the step's update).

        Args:
            batch: verl's ``DataProto`` of the step, rows in any order (verl may rebalance
                them): ``non_tensor_batch["extra_info"]`` (our ``sec_problem``),
                ``non_tensor_batch["uid"]`` (the group), ``batch["advantages"]`` (R, T),
                ``batch["response_mask"]`` (R, T), ``batch["token_level_scores"]`` (R, T).

        Raises:
            RuntimeError: when no step is waiting for feedback.
        """
        if self.pending is None:
            raise RuntimeError("on_batch_end without a drawn step waiting for feedback")
        step = self.pending
        info = batch.non_tensor_batch["extra_info"]
        rows = np.fromiter((int(x["sec_problem"]) for x in info), dtype=np.int64, count=len(info))
        abs_adv = token_mean_abs(batch.batch["advantages"], batch.batch["response_mask"])
        scores = batch.batch["token_level_scores"].sum(dim=-1).float().cpu().numpy().astype(np.float64)
        self.feed.feed(rows, abs_adv, scores)
        stats = self.feed.pop_stats()
        record: dict[str, Any] = {"step": step, "phase": "update"}
        record.update({k: v for k, v in stats.items() if not k.endswith("/prob")})
        record["zero_variance_frac"] = _zero_variance_frac(batch.non_tensor_batch["uid"], scores)
        self._log(record)
        self.pending = None
        ckpt = self.checkpoint_dir / f"global_step_{step}"
        if ckpt.is_dir():  # verl checkpointed this step just before calling us
            rundir.save_curriculum_state(ckpt, self.policy)

    def _log(self, record: Mapping[str, Any]) -> None:
        with self.log_path.open("a") as f:
            f.write(json.dumps({k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}) + "\n")


def _zero_variance_frac(uids: Any, scores: np.ndarray) -> float:
    """Share of groups (rollouts of one problem, by verl's ``uid``) whose rewards are all equal."""
    groups: dict[Any, list[float]] = {}
    for u, s in zip(uids, scores, strict=True):
        groups.setdefault(u, []).append(float(s))
    return float(np.mean([max(g) == min(g) for g in groups.values()])) if groups else 0.0
