"""TRL backend: GRPOTrainer / RLOOTrainer on one machine (CPU included) with the curriculum
choosing every step's problems.

How the curriculum plugs in (TRL 1.16, no patching of TRL internals):

* **Choice at generation time.** ``train_dataset`` is a table of step *slots* that only
  paces the data loader (TRL's own placeholder-dataset pattern for environments). The
  trainers' overridable ``_generate_and_score_completions(inputs)`` receives each step's
  slot rows, one group of ``num_generations`` consecutive rows per prompt (TRL's
  ``RepeatSampler`` layout); our subclass replaces every group by a problem the curriculum
  draws *now*. The draw of step t therefore already reflects the update of step t-1:
  accelerate's one-batch prefetch of the data loader cannot make the curriculum stale.
* **Feedback.** The same override reads the ``advantages`` and ``completion_mask`` that TRL
  returns and feeds the token-mean |A| of every rollout to the curriculum before the
  optimizer step, so the next draw sees it.
* **Dynamic sampling** (``train.dynamic_sampling``, sec/dynamic_sampling.py): the same override
  rolls out batch after batch through TRL's own method, feeds every group to the curriculum, and
  hands TRL one generation batch of the kept groups (:func:`sec.backends.trl_merge.merge_groups`),
  so the loss sees those only; every batch is counted in the step's budget (sec/budget.py).
* Metrics, evaluation and curriculum checkpoints go through a ``TrainerCallback``.
* SLURM's preemption / time-limit signal (inside a submitit job) makes the step in progress
  end with a checkpoint before submitit requeues the job (sec/preempt.py).

This backend runs one process (``accelerate`` with several processes would need the
curriculum draws synchronised across ranks: use ``backend=verl`` for multi-GPU runs).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sec import rundir
from sec.backends.trl_merge import merge_groups
from sec.budget import Budget
from sec.curriculum import CurriculumFeed, token_mean_abs
from sec.dynamic_sampling import DynamicSampling, GroupSelection, signal_groups
from sec.evaluate import model_prompt
from sec.metrics import read_metrics
from sec.preempt import PreemptionGuard
from sec.tasks.rewards import pop_reward_counts

if TYPE_CHECKING:
    from sec.workspace import Workspace

log = logging.getLogger("sec.backends.trl")

# TRL log keys -> metrics.jsonl schema (sec/metrics.py); other numeric keys go under trl/
_RENAME = {
    "reward": "reward_mean",
    "reward_std": "reward_std",
    "frac_reward_zero_std": "zero_variance_frac",
    "completions/mean_length": "response_length",
    "step_time": "step_time_s",
    "loss": "loss",
    "grad_norm": "grad_norm",
    "learning_rate": "learning_rate",
}


class CurriculumTrainerMixin:
    """Adds curriculum choice and feedback, dynamic sampling and budget accounting to a TRL online
    trainer (see module doc)."""

    sec_feed: CurriculumFeed
    sec_prompt_format: str
    sec_budget: Budget
    #: dynamic sampling's settings (None: off; sec/dynamic_sampling.py)
    sec_dynamic: DynamicSampling | None = None
    #: the task rewards of the last rollout batch, one per row (the reward function's sink)
    sec_rewards: list[float]
    #: the last step's kept groups and whether dynamic sampling hit its cap, read by the callback
    sec_step: dict[str, Any]

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        if not self.model.training:  # type: ignore[attr-defined]
            return super()._generate_and_score_completions(inputs)  # type: ignore[misc]
        groups = self._sec_groups(inputs)
        if self.sec_dynamic is None:
            out, _ = self._sec_rollout(groups)
            self.sec_step.update(groups_kept=groups, cap_hit=False)
            return out
        g = self.num_generations  # type: ignore[attr-defined]
        selection = GroupSelection(groups, g, self.sec_dynamic.max_draws)
        outs = []
        while not selection.done:
            out, rewards = self._sec_rollout(self.sec_dynamic.groups_per_draw)
            outs.append(out)
            selection.add(rewards >= 1.0)  # correct or not: the raw task reward (sec/dynamic_sampling.py)
        if selection.cap_hit:
            log.warning(
                "dynamic sampling: %d of %d groups with signal after %d draws (the cap, train.max_draws_per_step); "
                "the step is filled with dropped groups at zero loss weight",
                selection.kept,
                groups,
                selection.draws,
            )
        self.sec_step.update(groups_kept=selection.kept, cap_hit=selection.cap_hit)
        return merge_groups(outs, selection.plan(), g, self.processing_class.pad_token_id)  # type: ignore[attr-defined]

    def _sec_groups(self, inputs: list[dict[str, Any]]) -> int:
        """Groups in TRL's generation batch (consecutive rows of one slot each)."""
        g = self.num_generations  # type: ignore[attr-defined]
        if len(inputs) % g:
            raise RuntimeError(f"generation batch of {len(inputs)} rows is not whole groups of {g}")
        slots = [row.get("slot") for row in inputs]
        if any(len(set(slots[i : i + g])) != 1 for i in range(0, len(slots), g)):
            raise RuntimeError("TRL no longer delivers each prompt's rollouts as consecutive rows; cannot bind groups")
        return len(slots) // g

    def _sec_rollout(self, groups: int) -> tuple[dict[str, Any], np.ndarray]:
        """Roll out ``groups`` problems the curriculum draws now, feed every group's |A| back and count
        the batch; returns TRL's output and the task rewards, shape (groups * num_generations,)."""
        g = self.num_generations  # type: ignore[attr-defined]
        idx = self.sec_feed.draw(groups)
        bound = []
        for problem in idx:
            record = dict(self.sec_feed.problems[problem])
            record["prompt"] = model_prompt(record, self.sec_prompt_format)
            bound.extend(dict(record) for _ in range(g))
        reward_before = self.sec_budget.step_seconds("reward_s")
        t0 = time.perf_counter()
        out = super()._generate_and_score_completions(bound)  # type: ignore[misc]
        seconds = time.perf_counter() - t0
        self.sec_budget.add_seconds(
            "generation_s", seconds - (self.sec_budget.step_seconds("reward_s") - reward_before)
        )
        rewards = np.asarray(self.sec_rewards, dtype=np.float64)
        self.sec_feed.feed(np.repeat(idx, g), token_mean_abs(out["advantages"], out["completion_mask"]))
        self.sec_budget.add_draw(
            groups=groups,
            num_generations=g,
            completion_tokens=int(out["completion_mask"].sum()),
            signal_groups=int(signal_groups(rewards >= 1.0, g).sum()),
        )
        return out, rewards


def _trainer_classes() -> dict[str, tuple[type, type]]:
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    class CurriculumGRPOTrainer(CurriculumTrainerMixin, GRPOTrainer):
        """GRPOTrainer whose prompts the curriculum chooses."""

    class CurriculumRLOOTrainer(CurriculumTrainerMixin, RLOOTrainer):
        """RLOOTrainer whose prompts the curriculum chooses."""

    return {"grpo": (CurriculumGRPOTrainer, GRPOConfig), "rloo": (CurriculumRLOOTrainer, RLOOConfig)}


def make_reward_func(
    score: Callable[[str, Mapping[str, Any]], float],
    name: str,
    sink: Callable[[list[float]], None] | None = None,
    on_seconds: Callable[[float], None] | None = None,
) -> Callable[..., list[float]]:
    """A TRL reward function (``prompts, completions, **columns -> list[float]``) from a
    scorer of one completion text and its problem record; ``sink`` also receives the rewards
    (the curriculum's reward-based objectives and dynamic sampling read them), ``on_seconds`` the
    wall seconds of each call (budget accounting, sec/budget.py)."""

    def reward(prompts: list, completions: list, **columns: Any) -> list[float]:
        t0 = time.perf_counter()
        out = []
        for i, c in enumerate(completions):
            text = c[-1]["content"] if isinstance(c, list) and c else c
            record = {k: v[i] for k, v in columns.items() if isinstance(v, list) and len(v) == len(completions)}
            out.append(float(score(text if isinstance(text, str) else str(text), record)))
        if sink is not None:
            sink(out)
        if on_seconds is not None:
            on_seconds(time.perf_counter() - t0)
        return out

    reward.__name__ = name
    return reward


def rollouts_per_pass(ws: Workspace) -> int:
    """Rollouts in one training forward/backward pass (TRL's ``per_device_train_batch_size``).

    Activations kept for the backward pass grow with the tokens of the pass (SmolLM2-135M in
    fp32: ~2.7 MB per token, docs/memory.md), so a step's rollouts (``prompts_per_step x
    num_generations``) go through in micro-batches of the largest divisor ``n`` of that count
    with ``n x (longest training prompt + train.max_completion_length) <=
    backend.micro_batch_tokens`` (at least 1; the longest prompt in tokens as the model sees
    it, chat template included); ``null`` = all rollouts of the step in one pass. Gradients
    are accumulated over the micro-batches into one optimizer step, the same update as one
    pass: TRL's GRPO ``dapo`` loss divides by the step's token count, RLOO's per-sequence
    loss by the number of accumulated passes.
    """
    from sec.evaluate import render_prompt

    cfg = ws.cfg
    rollouts = int(cfg.train.prompts_per_step) * int(cfg.algorithm.num_generations)
    budget = cfg.backend.get("micro_batch_tokens")
    if budget is None:
        return rollouts
    fmt = str(cfg.model.prompt_format)
    texts = [render_prompt(r, ws.tokenizer, fmt) for r in ws.train_records]
    longest = max(len(ids) for ids in ws.tokenizer(texts, add_special_tokens=False)["input_ids"])
    per_row = longest + int(cfg.train.max_completion_length)
    fits = [n for n in range(1, rollouts + 1) if rollouts % n == 0 and n * per_row <= int(budget)]
    n = max(fits, default=1)
    log.info("training passes of %d rollouts (%d per step; at most %d tokens each)", n, rollouts, n * per_row)
    return n


def build_args(ws: Workspace, config_cls: type) -> Any:
    """TRL config from the run config (paper values: SEC.md §3)."""
    import torch

    cfg = ws.cfg
    algo = cfg.algorithm
    g = int(algo.num_generations)
    rollouts = int(cfg.train.prompts_per_step) * g
    per_pass = rollouts_per_pass(ws)
    kwargs: dict[str, Any] = dict(
        output_dir=str(ws.checkpoint_dir),
        max_steps=int(cfg.train.steps),
        # one optimizer step per training step: its rollouts, generated at once, are split into
        # passes whose gradients accumulate (TRL: steps_per_generation = accumulation steps)
        per_device_train_batch_size=per_pass,
        gradient_accumulation_steps=rollouts // per_pass,
        num_generations=g,
        learning_rate=float(cfg.train.learning_rate),
        adam_beta1=float(cfg.train.adam_betas[0]),
        adam_beta2=float(cfg.train.adam_betas[1]),
        weight_decay=float(cfg.train.weight_decay),
        warmup_steps=int(cfg.train.warmup_steps),
        lr_scheduler_type="constant" if int(cfg.train.warmup_steps) == 0 else "constant_with_warmup",
        max_grad_norm=float(cfg.train.max_grad_norm),
        max_completion_length=int(cfg.train.max_completion_length),
        temperature=float(cfg.train.temperature),
        top_p=1.0,
        top_k=0,
        beta=float(algo.beta),
        epsilon=float(algo.epsilon),
        logging_steps=1,
        save_strategy="steps" if int(cfg.train.save_every) > 0 else "no",
        save_steps=max(1, int(cfg.train.save_every)),
        # TRL deletes old checkpoints before on_save completes the new one: we prune instead,
        # after it (SECCallback.on_save, rundir.prune_checkpoints)
        save_total_limit=None,
        report_to=[],
        seed=int(cfg.seed),
        data_seed=int(cfg.seed),
        use_cpu=not torch.cuda.is_available(),
        bf16=bool(cfg.backend.bf16),
        # TRL turns it on by default; it also disables the KV cache during generation, which
        # makes CPU rollouts quadratic in length. Worth it only for large models on GPUs.
        gradient_checkpointing=bool(cfg.backend.gradient_checkpointing),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        shuffle_dataset=False,
        log_completions=bool(cfg.backend.log_completions),
        disable_tqdm=True,
    )
    if algo.name == "grpo":
        kwargs.update(scale_rewards=str(algo.scale_rewards), loss_type=str(algo.loss_type))
    elif algo.name == "rloo":
        kwargs.update(normalize_advantages=bool(algo.normalize_advantages))
    return config_cls(**kwargs)


def _trainer_callback(ws: Workspace, feed: CurriculumFeed, budget: Budget, step_info: dict[str, Any]) -> Any:
    from transformers import TrainerCallback

    class SECCallback(TrainerCallback):
        """Writes train records, runs the periodic evaluation and saves the curriculum
        state into every checkpoint directory."""

        def __init__(self) -> None:
            self.last_eval_step = -1
            self.t_step = time.perf_counter()

        def on_train_begin(self, args, state, control, model=None, **kw):
            if ws.cfg.eval.at_start and state.global_step == 0:
                ws.evaluate(model, 0)
                self.last_eval_step = 0
            self.t_step = time.perf_counter()

        def on_log(self, args, state, control, logs=None, model=None, **kw):
            logs = logs or {}
            if "reward" not in logs:  # the end-of-training summary, not a step
                return
            record: dict[str, Any] = {"step": state.global_step, "kind": "train"}
            for k, v in logs.items():
                if isinstance(v, (int, float)):
                    record[_RENAME.get(k, f"trl/{k}")] = v
            wall = time.perf_counter() - self.t_step
            record["wall_time_s"] = wall
            stats = feed.pop_stats()
            record.update(stats)
            record.update(
                budget.end_step(
                    wall,
                    int(step_info.get("groups_kept", 0)),
                    bool(step_info.get("cap_hit", False)),
                    curriculum_s=float(stats.get("curriculum/overhead_ms", 0.0)) / 1e3,
                )
            )
            record.update(pop_reward_counts())  # answers checked / timed out since the last record
            ws.metrics.write(record)
            log.info(
                "step %d/%d reward %.3f zero-var %.2f level %.2f (%.1fs)",
                state.global_step,
                state.max_steps,
                record.get("reward_mean", float("nan")),
                record.get("zero_variance_frac", float("nan")),
                record.get("curriculum/sampled_level_mean", float("nan")),
                record["wall_time_s"],
            )
            every = int(ws.cfg.eval.every)
            if (every > 0 and state.global_step % every == 0) or state.global_step == state.max_steps:
                ws.evaluate(model, state.global_step)
                self.last_eval_step = state.global_step
            self.t_step = time.perf_counter()

        def on_save(self, args, state, control, **kw):
            rundir.save_curriculum_state(Path(args.output_dir) / f"checkpoint-{state.global_step}", feed.policy)
            # the new checkpoint is complete: only now may older ones go (TRL's own rotation,
            # before on_save, could leave no complete checkpoint; build_args turns it off)
            rundir.prune_checkpoints(args.output_dir, "trl", keep=int(ws.cfg.train.save_total_limit or 0))

    return SECCallback()


def _preemption_callback(guard: PreemptionGuard) -> Any:
    from transformers import TrainerCallback

    class PreemptionCallback(TrainerCallback):
        """Turns a preemption signal (``guard.requested``) into a checkpoint of the step in
        progress and the end of ``train()`` (sec/preempt.py), at the first safe point: after
        the step and after its log (our evaluation runs in ``on_log``), before the trainer's
        save decision; and after a periodic save (our ``on_save`` has completed it: no second
        save, no further step)."""

        def _stop(self, control):
            if guard.requested:
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_step_end(self, args, state, control, **kw):
            return self._stop(control)

        def on_log(self, args, state, control, **kw):
            return self._stop(control)

        def on_save(self, args, state, control, **kw):
            if guard.requested:
                control.should_training_stop = True
            return control

    return PreemptionCallback()


def train(ws: Workspace) -> None:
    """Run the RL fine-tuning of ``ws`` with TRL, resuming from the run's last checkpoint if
    one exists (model, optimizer, scheduler, RNG, data position and curriculum state).

    The trainer, its model and optimizer state form reference cycles (trainer, callbacks,
    accelerator) that outlive this call until Python's cyclic garbage collector happens to
    run, at no fixed point. Hydra's basic launcher runs a sweep's jobs one after another in
    this process, so the next job could train with the earlier jobs' models and optimizer
    states (SmolLM2-135M in fp32: 0.54 GB of weights and 1.08 GB of Adam moments each) still
    resident: they are collected here when the job ends (docs/memory.md).

    Raises:
        ValueError: for an algorithm this backend does not offer (``ppo`` needs a critic:
            use ``backend=verl``).
    """
    try:
        _train(ws)
    finally:
        gc.collect()


def _train(ws: Workspace) -> None:
    import torch
    from datasets import Dataset

    cfg = ws.cfg
    classes = _trainer_classes()
    if cfg.algorithm.name not in classes:
        raise ValueError(
            f"backend=trl offers algorithm={'|'.join(classes)}, not {cfg.algorithm.name!r} (PPO: use backend=verl)"
        )
    if cfg.backend.num_threads:
        torch.set_num_threads(int(cfg.backend.num_threads))
    trainer_cls, config_cls = classes[cfg.algorithm.name]
    model, tokenizer = ws.load_model()
    feed = CurriculumFeed(ws.policy, ws.train_records)
    # before the trainer exists: the curriculum state and the budget so far come from the checkpoint
    resume = ws.resume("trl")
    budget = Budget.resume(read_metrics(ws.run_dir / rundir.METRICS))
    step_info: dict[str, Any] = {}
    last_rewards: list[float] = []

    def sink(rewards: list[float]) -> None:
        feed.record_rewards(rewards)
        last_rewards[:] = rewards

    n_slots = int(cfg.train.steps) * int(cfg.train.prompts_per_step)
    slots = Dataset.from_dict({"prompt": [""] * n_slots, "slot": list(range(n_slots))})
    guard = PreemptionGuard()
    reward_func = make_reward_func(
        ws.train_score, f"{cfg.task.name}_reward", sink, lambda s: budget.add_seconds("reward_s", s)
    )
    trainer = trainer_cls(
        model=model,
        reward_funcs=[reward_func],
        args=build_args(ws, config_cls),
        train_dataset=slots,
        processing_class=tokenizer,
        callbacks=[_trainer_callback(ws, feed, budget, step_info), _preemption_callback(guard)],
    )
    # our callback writes every step's record; TRL's console printer would repeat it as a dict
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.sec_feed = feed
    trainer.sec_budget = budget
    trainer.sec_step = step_info
    trainer.sec_rewards = last_rewards
    trainer.sec_dynamic = DynamicSampling.from_config(cfg.train)
    trainer.sec_prompt_format = str(cfg.model.prompt_format)

    with guard:
        if guard.requested:  # signalled while loading: the last checkpoint (if any) is all there is
            guard.hand_over()
        trainer.train(resume_from_checkpoint=resume)
        if guard.requested and trainer.state.global_step < trainer.state.max_steps:
            guard.hand_over()  # the checkpoint is saved: submitit requeues the job and exits
    if int(cfg.train.save_every) > 0:
        trainer.save_model(str(ws.run_dir / "final_model"))
