"""The parts of the verl backend that run inside verl's trainer (loaded by verl from the
config: ``data.custom_cls`` and ``reward.custom_reward_function``, as ``pkg://`` modules).

* :class:`SECDataset` — verl's ``RLHFDataset`` over the training problems whose items are
  *slots*: slot ``(t - 1) * B + j`` is the j-th problem of step t, drawn from the curriculum when
  the data loader asks for the step's first slot. verl's legacy ``RayPPOTrainer.fit`` calls
  ``on_batch_end(batch)`` after every step but the last, with the step's ``advantages`` and
  ``response_mask``; the dataset feeds their token-mean |A| to the curriculum (the same
  :class:`sec.curriculum.feed.CurriculumFeed` the TRL backend uses) before the next draw,
  writes the step's curriculum metrics and, when verl checkpointed this step, the curriculum
  state into the checkpoint directory. The validation set uses the same class and behaves as
  a plain ``RLHFDataset``.
* :func:`compute_score` — the reward (SEC.md §2) from the decoded response, the answer and
  the row's ``extra_info``.

Settings come from ``sec_spec.json`` beside the training parquet (written by
:mod:`sec.backends.verl.data`), so no key outside verl's own config is needed.

Preemption: when the launcher has written ``save_request`` (SLURM's preemption signal,
sec/backends/verl/launch.py), :meth:`SECDataset.on_batch_end` arms verl's public ESI hook in the
trainer's process (:data:`ESI_EXPIRATION`, read by ``should_save_ckpt_esi`` at every step's save
point of ``RayPPOTrainer.fit``), so verl saves the next step's checkpoint; once that checkpoint
holds the curriculum state it holds verl until the launcher stops it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from verl.utils.dataset.rl_dataset import RLHFDataset

from sec import rundir
from sec.backends.verl.paths import SPEC, TRACKER
from sec.curriculum import CurriculumFeed, arms_of_records, build_curriculum, token_mean_abs
from sec.tasks.rewards import score_completion

#: a capacity-block expiration time (seconds since the epoch) that verl's ESI hook reads from the
#: environment (``verl/utils/checkpoint/checkpoint_manager.py: should_save_ckpt_esi``, SageMaker's
#: variable): once it is due, verl saves at the next step's save point (``trainer.save_freq > 0``)
ESI_EXPIRATION = "SAGEMAKER_CURRENT_CAPACITY_BLOCK_EXPIRATION_TIMESTAMP"
#: after the checkpoint a preemption asked for, how long verl is held for the launcher to stop
#: it (seconds); past that (the launcher is gone or stuck), training goes on
HOLD_S = 600.0


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
        ``{"score": r, "acc": c, "answered": a, "reward_timeout": t}``: ``score`` is the training reward (1
        correct, ``format_reward`` boxed but wrong, else 0; SEC.md §2), ``acc`` the validation
        score (1 / 0) that verl averages into ``val-core/<data_source>/acc/mean@k`` (pass@1),
        ``answered`` 1 when an answer was extracted and checked (the ``reward/checks`` count),
        ``reward_timeout`` 1 when the answer's check did not finish in time (scored 0; the bound
        holds in verl's reward threads too: docs/rewards.md).

    Raises:
        KeyError: ``extra_info`` lacks ``format_reward`` or ``answer_extraction``.
    """
    info = dict(extra_info or {})
    missing = [k for k in ("format_reward", "answer_extraction") if k not in info]
    if missing:
        raise KeyError(f"extra_info has no {missing}: the rows come from sec.backends.verl.verl_rows (the task config)")
    record = {"task": info.get("task") or str(data_source).split("/")[0], "answer": ground_truth}
    score = score_completion(solution_str, record, extraction=str(info["answer_extraction"]))
    return {
        "score": score.reward(train=True, format_reward=float(info["format_reward"])),
        "acc": float(score.correct),
        "answered": float(score.answered),
        "reward_timeout": float(score.timed_out),
    }


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
        self.save_request = Path(spec["save_request"]) if spec.get("save_request") else None
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
        record.update(self.feed.pop_stats(end_step=False))
        record.update({k: v for k, v in self.policy.stats().items() if k.endswith("/count")})
        record["problems"] = [int(x) for x in self.drawn]  # the rows of this step, in slot order
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
        record["reward_std"] = float(np.std(scores)) if scores.size else 0.0
        nt = batch.non_tensor_batch
        if "answered" in nt:
            record["reward/checks"] = int(np.sum(np.asarray(nt["answered"], dtype=np.float64)))
        if "reward_timeout" in nt:
            record["reward/timeouts"] = int(np.sum(np.asarray(nt["reward_timeout"], dtype=np.float64)))
        record["fed_problems"] = sorted(int(x) for x in rows)  # the rows verl trained on, one per rollout
        self._log(record)
        self.pending = None
        ckpt = self.checkpoint_dir / f"global_step_{step}"
        saved = ckpt.is_dir()
        if saved:  # verl checkpointed this step just before calling us
            rundir.save_curriculum_state(ckpt, self.policy)
        self._request_save(saved)

    def _request_save(self, saved: bool) -> None:
        """After a preemption request: arm verl's ESI hook until a checkpoint is saved; once it
        is (and holds the curriculum state), disarm it and hold verl here until the launcher
        stops it (at most :data:`HOLD_S`), so that no step runs after the checkpoint the
        requeued job resumes from."""
        if self.save_request is None or not self.save_request.exists():
            return
        if not saved:
            os.environ[ESI_EXPIRATION] = str(int(time.time()))
            return
        os.environ.pop(ESI_EXPIRATION, None)
        print(
            f"sec: checkpoint of step {self.step} saved after a preemption request; waiting to be stopped", flush=True
        )
        deadline = time.monotonic() + HOLD_S
        while time.monotonic() < deadline:
            time.sleep(0.5)

    def _log(self, record: Mapping[str, Any]) -> None:
        with self.log_path.open("a") as f:
            f.write(json.dumps({k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}) + "\n")


def _zero_variance_frac(uids: Any, scores: np.ndarray) -> float:
    """Share of groups (rollouts of one problem, by verl's ``uid``) whose rewards are all equal."""
    groups: dict[Any, list[float]] = {}
    for u, s in zip(uids, scores, strict=True):
        groups.setdefault(u, []).append(float(s))
    return float(np.mean([max(g) == min(g) for g in groups.values()])) if groups else 0.0
