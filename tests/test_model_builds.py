"""Every local model source builds the same model as before the ``sec/models/`` package (issue 24,
item 3): a fresh build of each case of tests/fixtures/record_model_builds.py has the cache key
(directory name) and the sha256 of every file recorded at 7b61fe0 (tests/fixtures/model_builds.json;
two builds there were bit-identical).

Trained weights are float results of torch's CPU kernels, which are chosen by the CPU's kernel set
(AVX2, AVX-512, ...) and differ between sets in their last bits. On a machine of the recorded set
every file must match to the bit; on another, a trained build (``pretrain``, ``sft``) must match in
its cache key and in every file but the weights and the build record (its losses), and the other
builds (``random_init``: torch's generator; ``package``: an exact dequantisation) to the bit.
"""

from __future__ import annotations

import json

import pytest

from fixtures.record_model_builds import OUT, RECORDS, build, cases, cpu_capability

RECORDED = json.loads(OUT.read_text())
#: builds of a minute or more on one busy core (the package case also writes 540 MB)
SLOW = {"pretrain_testbed_mini", "package_smollm2_135m"}
#: the sources whose weights come from training (float kernels), and their kernel-set-dependent files
TRAINED = {"pretrain", "sft"}
KERNEL_RESULTS = {"model.safetensors", *RECORDS}


def comparable(build: dict, here: str) -> dict:
    """The parts of a build record that must match on a machine of kernel set ``here``."""
    out = {k: v for k, v in build.items() if k != "cpu"}
    if build["source"] in TRAINED and build["cpu"] != here:
        out["files"] = {f: d for f, d in build["files"].items() if f not in KERNEL_RESULTS}
        out["file names"] = sorted(build["files"])
    return out


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in sorted(RECORDED)]
)
def test_a_fresh_build_is_bit_identical_to_the_recorded_one(name, tmp_path):
    got, want = build(name, cases()[name], tmp_path), RECORDED[name]
    here = cpu_capability()
    assert comparable(dict(got, cpu=want["cpu"]), here) == comparable(want, here)


def test_every_case_is_recorded():
    assert sorted(cases()) == sorted(RECORDED)


def test_on_another_kernel_set_a_trained_build_is_compared_without_its_weights():
    files = {"config.json": "c", "model.safetensors": "w", "pretrain.json": "r"}
    recorded = {"source": "pretrain", "dir": "m-1", "files": files, "cpu": "AVX512"}
    other_weights = dict(
        recorded, files=dict(files, **{"model.safetensors": "w2", "pretrain.json": "r2"}), cpu="AVX512"
    )
    assert comparable(other_weights, "AVX2") == comparable(recorded, "AVX2")
    assert comparable(other_weights, "AVX512") != comparable(recorded, "AVX512")  # same set: to the bit
    other_config = dict(recorded, files=dict(files, **{"config.json": "c2"}))
    assert comparable(other_config, "AVX2") != comparable(recorded, "AVX2")
    missing_weights = dict(recorded, files={"config.json": "c", "pretrain.json": "r"})
    assert comparable(missing_weights, "AVX2") != comparable(recorded, "AVX2")
    untrained = dict(recorded, source="random_init")
    assert comparable(dict(untrained, files=dict(files, **{"model.safetensors": "w2"})), "AVX2") != comparable(
        untrained, "AVX2"
    )
