"""The task layer produces the same data as before a change: cache keys of every task config
under every profile, and the records themselves (a digest of their content) of small real sets.

The expected values (``tests/data/task_fingerprints.json``) were computed with this file's
``compute()`` on the code before the task modules were split (``main`` at c8547f6) and are
rewritten only on purpose, by ``python tests/test_task_fingerprints.py --write``, when a change
is meant to change the data (say which in the commit). A refactor that changes a key or a record
fails here.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))  # conftest, when run as a script
from conftest import CONF
from sec.tasks import cache_key, load_task_data
from sec.workspace import task_components

FIXTURE = Path(__file__).with_name("data") / "task_fingerprints.json"
PROFILES = ("tiny", "cpu", "cpu_bench", "paper")
#: (task, profile) pairs whose records are generated and digested (small and quick)
RECORD_SETS = [(t, "tiny") for t in ("countdown", "zebra", "arc", "arith", "math")] + [
    ("arith", "cpu"),
    ("countdown", "cpu"),
]


def task_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "task").glob("*.yaml"))


def components(task: str, profile: str) -> list[dict[str, Any]]:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"task={task}", f"profile={profile}"])
    return task_components(cfg.task)


def digest(df: Any) -> str:
    """sha256 of the records' content (column names, values and dtypes), independent of the
    parquet writer's version."""
    h = hashlib.sha256(json.dumps([f"{c}:{t}" for c, t in df.dtypes.astype(str).items()]).encode())
    for row in df.to_dict("records"):
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
    return h.hexdigest()


def compute_keys() -> dict[str, str]:
    return {
        f"{task}/{profile}/{comp['name']}": cache_key(comp)
        for task in task_names()
        for profile in PROFILES
        for comp in components(task, profile)
    }


def compute_records(task: str, profile: str, cache: Path) -> dict[str, Any]:
    out = {}
    for comp in components(task, profile):
        df = load_task_data(comp, cache)
        out[comp["name"]] = {"rows": len(df), "digest": digest(df)}
    return out


def compute() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        records = {f"{t}/{p}": compute_records(t, p, Path(tmp)) for t, p in RECORD_SETS}
    return {"keys": compute_keys(), "records": records}


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def test_cache_keys_of_every_task_config_are_unchanged(expected):
    got = compute_keys()
    missing = sorted(set(expected["keys"]) - set(got))
    assert not missing, f"task configs gone: {missing}"
    changed = {k: (expected["keys"][k], got[k]) for k in expected["keys"] if got[k] != expected["keys"][k]}
    assert not changed, f"cache keys changed (expected, got): {changed}"


@pytest.mark.parametrize(("task", "profile"), RECORD_SETS)
def test_generated_records_are_unchanged(task, profile, expected, tmp_path):
    assert compute_records(task, profile, tmp_path) == expected["records"][f"{task}/{profile}"]


if __name__ == "__main__":
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("SEC_EVAL_DATA_DIR", str(CONF.parent / "tests" / "data"))
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_task_fingerprints.py --write")
    FIXTURE.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}")
