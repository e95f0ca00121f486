"""verl rollout engine ``hf``: transformers' model in a Ray actor, for verl's CPU runs.

verl 0.9.1 generates through a rollout *server* per replica (vLLM / SGLang / TRT-LLM) that its
agent loop calls with token ids (``server.generate(prompt_ids, sampling_params, request_id)`` ->
``TokenOutput``; ``verl/workers/rollout/llm_server.py``), and syncs the trainer's weights into it
through a rollout *adapter* living in each trainer worker (``BaseRollout.update_weights``, called
by the naive checkpoint engine in ``verl/workers/engine_workers.py: update_weights``). This module
is that pair for a machine without a GPU, registered by :mod:`sec.backends.verl.cpu` under the
name ``hf`` (``actor_rollout_ref.rollout.name=hf``):

* :class:`HFRolloutServer` — the Ray actor: the policy as a transformers ``AutoModelForCausalLM``
  on the CPU. Concurrent requests are batched (those that arrive while a batch runs form the
  next one) and generated with ``model.generate``; sampling (temperature, top-k, top-p; SEC.md
  §3 uses temperature 1.0 and neither) is done per request by :class:`SeededSampler`.
* :class:`HFServerAdapter` — the trainer worker's side: collects the full tensors verl yields
  and loads them into the server (``load_state_dict``, every parameter accounted for).
* :class:`HFReplica` — starts the server actor next to its trainer worker.

Reproducibility: each request samples from its own ``torch.Generator`` seeded by
``(rollout.seed, the weights' global step, request id, prompt ids)``. With verl's
``rollout.full_determinism=true`` (set for CPU runs) the request id is ``det-<row>``, so a run
resumed from a checkpoint draws exactly the rollouts of an uninterrupted one. A row's tokens
must then not depend on which other requests happen to share its batch (that depends on arrival
times): every prompt is left-padded to a width that depends on its own length only
(:meth:`HFRolloutServer.width`), every ``model.generate`` call has the same number of rows
(``batch_rows``, filled up with copies), and the server computes on one thread (with more, CPU
kernels split work by shape and the last bits of a logit depend on a row's neighbours). Checked
bit for bit in ``tests/test_verl_cpu.py``.

Log-probs (``rollout.calculate_log_probs``) are those of the sampled token under the processed
distribution (temperature, top-k, top-p applied), as vLLM's ``processed_logprobs`` mode returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import ray
import torch
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import HFModelConfig, RolloutConfig
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

#: defaults of ``actor_rollout_ref.rollout.engine_kwargs.hf``
ENGINE_DEFAULTS: dict[str, Any] = {
    # torch threads of the server process; 1 keeps a row's logits independent of its batch (with
    # more threads, kernels split the work by shape and results differ in the last bits)
    "num_threads": 1,
    # rows of one model.generate call (requests, then filler): fixed, so every call has one shape
    "batch_rows": 64,
    # a batch starts once no request arrived for this long (seconds)
    "batch_wait_s": 0.05,
    # a JSON line per batch (requests, seconds in model.generate, the weights' step) appended here
    "stats_file": None,
    # prompts are left-padded to the next multiple of this many tokens (see HFRolloutServer.width)
    "pad_multiple": 16,
}


def request_seed(base_seed: int, global_steps: int | None, request_id: str, prompt_ids: Sequence[int]) -> int:
    """The seed of one request's sampling generator: sha256 of (rollout seed, weights' global
    step, request id, prompt ids), first 8 bytes, as a non-negative int63."""
    key = f"{int(base_seed)}|{global_steps}|{request_id}|{','.join(str(int(t)) for t in prompt_ids)}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def _normalized(sampling_params: dict[str, Any], default_max_tokens: int) -> tuple[float, float, int, int, bool]:
    """(temperature, top_p, top_k, max_tokens, logprobs) of verl's sampling params.

    Raises:
        ValueError: for sampling options this engine does not implement (a repetition penalty
            other than 1, ``ignore_eos``, ``stop`` strings, ``n`` > 1): one line naming them.
    """
    p = dict(sampling_params)
    temperature = float(p.pop("temperature", 1.0))
    top_p = float(p.pop("top_p", 1.0))
    top_k = int(p.pop("top_k", -1))
    max_tokens = p.pop("max_tokens", p.pop("max_new_tokens", None))
    logprobs = bool(p.pop("logprobs", False))
    unsupported = {k: v for k, v in p.items() if not _neutral(k, v)}
    if unsupported:
        raise ValueError(f"rollout.name=hf does not implement the sampling options {unsupported}")
    return temperature, top_p, top_k, int(max_tokens or default_max_tokens), logprobs


def _neutral(key: str, value: Any) -> bool:
    """Sampling params verl sends that change nothing here."""
    return (
        (key == "repetition_penalty" and float(value) == 1.0)
        or (key in ("ignore_eos", "skip_special_tokens", "detokenize") and not value)
        or (key in ("n", "seed") and value in (1, None))
        or (key == "stop" and not value)
    )


class SeededSampler:
    """A transformers logits processor that samples each row from its own generator.

    Used with ``generate(do_sample=False)``: it returns scores that are ``-inf`` everywhere but
    at the token it sampled, so the greedy step picks that token. Temperature 0 is greedy.

    Args:
        generators: one ``torch.Generator`` per batch row.
        temperature, top_p, top_k: the processed distribution (``top_k`` <= 0: all tokens).

    Attributes:
        logprobs: per step, a (B,) float tensor: the log-prob of the chosen token under the
            processed distribution.
    """

    def __init__(self, generators: Sequence[torch.Generator], temperature: float, top_p: float, top_k: int) -> None:
        self.generators = list(generators)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.top_k = int(top_k)
        self.logprobs: list[torch.Tensor] = []

    def _processed(self, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.float()
        if self.temperature > 0:
            logits = logits / self.temperature
        if 0 < self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            cum = sorted_logits.softmax(-1).cumsum(-1)
            drop = cum - sorted_logits.softmax(-1) >= self.top_p  # keep the smallest set reaching top_p
            logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
        return torch.log_softmax(logits, dim=-1)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logp = self._processed(scores)
        if self.temperature > 0:
            probs = logp.exp()
            chosen = torch.stack(
                [torch.multinomial(probs[i], 1, generator=g)[0] for i, g in enumerate(self.generators)]
            )
        else:
            chosen = logp.argmax(-1)
        self.logprobs.append(logp.gather(-1, chosen[:, None])[:, 0])
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, chosen[:, None], 0.0)
        return out


@dataclass
class _Request:
    prompt_ids: list[int]
    params: tuple[float, float, int, int, bool]
    seed: int
    future: asyncio.Future


class HFRolloutServer:
    """The rollout server of one replica (a Ray actor; methods called by verl's agent loop,
    replica and adapter). See the module doc.

    Args:
        config: verl's rollout config (``RolloutConfig`` or its DictConfig).
        model_config: verl's actor model config (``actor_rollout_ref.model``).
        replica_rank, node_rank: this server's place (named ``hf_server_<replica>_<node>``).
    """

    def __init__(self, config: Any, model_config: Any, replica_rank: int = 0, node_rank: int = 0) -> None:
        from transformers import AutoModelForCausalLM

        self.config: RolloutConfig = config if isinstance(config, RolloutConfig) else omega_conf_to_dataclass(config)
        self.model_config: HFModelConfig = (
            model_config
            if isinstance(model_config, HFModelConfig)
            else omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        )
        self.replica_rank, self.node_rank = int(replica_rank), int(node_rank)
        engine = {**ENGINE_DEFAULTS, **dict((self.config.engine_kwargs or {}).get("hf") or {})}
        if engine["num_threads"]:
            torch.set_num_threads(int(engine["num_threads"]))
        self.num_threads = torch.get_num_threads()
        self.batch_wait_s = float(engine["batch_wait_s"])
        self.pad_multiple = max(1, int(engine["pad_multiple"]))
        self.batch_rows = max(1, int(engine["batch_rows"]))
        self.stats_file = engine["stats_file"]
        attn = dict(self.model_config.override_config or {}).get("attn_implementation", "sdpa")
        dtype = getattr(torch, str(self.config.dtype).replace("bf16", "bfloat16").replace("fp32", "float32"))
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_config.local_path,
            dtype=dtype,
            attn_implementation=attn,
            trust_remote_code=self.model_config.trust_remote_code,
        ).eval()
        self.eos_ids = _eos_ids(self.model_config, self.model)
        self.pad_id = self.eos_ids[0] if self.eos_ids else 0
        self.global_steps: int | None = None
        self.weights_version = 0
        self._queue: list[_Request] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._model_lock = threading.Lock()
        #: seconds spent in batched generation / weight loading, and the batches run
        self.stats = {"generate_s": 0.0, "load_weights_s": 0.0, "batches": 0, "requests": 0}

    # ------------------------------------------------------------------ generation
    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Any = None,
        video_data: Any = None,
        **kwargs: Any,
    ) -> TokenOutput:
        """Token-in, token-out generation of one request (verl's server contract:
        ``verl/workers/rollout/replica.py: TokenOutput``).

        Raises:
            ValueError: for multimodal inputs, unsupported sampling options, or a prompt longer
                than ``rollout.prompt_length``.
        """
        if image_data is not None or video_data is not None or kwargs.get("audio_data") is not None:
            raise ValueError("rollout.name=hf is text-only: no image / video / audio inputs")
        prompt_ids = [int(t) for t in prompt_ids]
        if len(prompt_ids) > int(self.config.prompt_length):
            raise ValueError(
                f"prompt of {len(prompt_ids)} tokens is longer than rollout.prompt_length={self.config.prompt_length}"
            )
        params = _normalized(sampling_params, int(self.config.response_length))
        seed = request_seed(int(self.config.seed), self.global_steps, str(request_id), prompt_ids)
        loop = asyncio.get_running_loop()
        request = _Request(prompt_ids, params, seed, loop.create_future())
        self._queue.append(request)
        if self._loop is not loop:  # the actor's loop (tests call the server from fresh loops)
            self._loop, self._arrived, self._worker = loop, asyncio.Event(), None
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._serve())
        token_ids, logprobs = await request.future
        return TokenOutput(
            token_ids=token_ids,
            log_probs=logprobs if params[4] else None,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    async def _serve(self) -> None:
        """Run queued requests in batches until the queue is empty."""
        while self._queue:
            # let the requests of one wave arrive: wait until none came for batch_wait_s
            arrived = self._arrived
            assert arrived is not None
            while True:
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), self.batch_wait_s)
                except TimeoutError:
                    break
            limit = max(1, int(self.config.max_num_seqs))
            batch, self._queue = self._queue[:limit], self._queue[limit:]
            try:
                results = await asyncio.to_thread(self._generate_batch, batch)
            except Exception as e:  # every waiting request gets the error, none hangs
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(e)
                continue
            for r, res in zip(batch, results, strict=True):
                if not r.future.done():
                    r.future.set_result(res)

    def _generate_batch(self, batch: Sequence[_Request]) -> list[tuple[list[int], list[float]]]:
        """Generate every request of ``batch`` (grouped by sampling params); results in order."""
        t0 = time.perf_counter()
        out: list[tuple[list[int], list[float]] | None] = [None] * len(batch)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(batch):
            groups.setdefault((r.params, self.width(len(r.prompt_ids))), []).append(i)
        with self._model_lock, torch.inference_mode():
            for (params, width), idx in sorted(groups.items()):
                results = self._generate_group([batch[i] for i in idx], params, width)
                for i, res in zip(idx, results, strict=True):
                    out[i] = res
        seconds = time.perf_counter() - t0
        self.stats["generate_s"] += seconds
        self.stats["batches"] += 1
        self.stats["requests"] += len(batch)
        if self.stats_file:
            line = {
                "time": time.time(),
                "requests": len(batch),
                "generate_s": seconds,
                "global_steps": self.global_steps,
            }
            with open(self.stats_file, "a") as f:
                f.write(json.dumps(line) + "\n")
        return out  # type: ignore[return-value]

    def width(self, n_tokens: int) -> int:
        """The padded width of a prompt of ``n_tokens``: the next multiple of ``pad_multiple``.
        It depends on the prompt alone, so a row's logits do not depend on which other requests
        share its batch (the attention's reduction length is the row's own)."""
        m = self.pad_multiple
        return -(-int(n_tokens) // m) * m

    def _generate_group(
        self, requests: Sequence[_Request], params: tuple[float, float, int, int, bool], width: int
    ) -> list[tuple[list[int], list[float]]]:
        out: list[tuple[list[int], list[float]]] = []
        for start in range(0, len(requests), self.batch_rows):
            chunk = list(requests[start : start + self.batch_rows])
            out += self._generate_chunk(chunk, params, width)
        return out

    def _generate_chunk(
        self, requests: Sequence[_Request], params: tuple[float, float, int, int, bool], width: int
    ) -> list[tuple[list[int], list[float]]]:
        """One ``model.generate`` call of exactly ``batch_rows`` rows (the requests, then copies
        of the first as filler): every call has the same shapes, so a row's tokens do not depend
        on how many requests arrived with it (module doc)."""
        from transformers import GenerationConfig, LogitsProcessorList

        temperature, top_p, top_k, max_tokens, _ = params
        max_tokens = max(1, min(max_tokens, int(self.config.response_length)))
        rows = list(requests) + [requests[0]] * (self.batch_rows - len(requests))
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids, dtype=torch.long)
            mask[i, width - len(r.prompt_ids) :] = 1
        sampler = SeededSampler([torch.Generator().manual_seed(r.seed) for r in rows], temperature, top_p, top_k)
        gen = GenerationConfig(
            max_new_tokens=max_tokens,
            do_sample=False,
            eos_token_id=self.eos_ids or None,
            pad_token_id=self.pad_id,
            num_beams=1,
        )
        seqs = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            generation_config=gen,
            logits_processor=LogitsProcessorList([sampler]),
        )
        new = seqs[:, width:]
        logps = torch.stack(sampler.logprobs, dim=1) if sampler.logprobs else torch.zeros(len(requests), 0)
        results = []
        eos = set(self.eos_ids)
        for i in range(len(requests)):
            tokens: list[int] = []
            for t in new[i].tolist():
                tokens.append(int(t))
                if t in eos:
                    break
            results.append((tokens, [float(x) for x in logps[i, : len(tokens)].tolist()]))
        return results

    # ------------------------------------------------------------------ weights
    async def update_weights(self, state: dict[str, torch.Tensor], global_steps: int | None = None) -> dict[str, Any]:
        """Load the trainer's weights (full tensors by HF parameter name).

        Raises:
            KeyError: a name the model does not have, or a parameter of the model that ``state``
                leaves out (tied output embeddings excepted): the sync would be partial.
        """
        t0 = time.perf_counter()
        await asyncio.to_thread(self._load, state)
        self.stats["load_weights_s"] += time.perf_counter() - t0
        if global_steps is not None:
            self.global_steps = int(global_steps)
        self.weights_version += 1
        return {"seconds": time.perf_counter() - t0, "tensors": len(state)}

    def _load(self, state: dict[str, torch.Tensor]) -> None:
        with self._model_lock, torch.no_grad():
            own = self.model.state_dict()
            unknown = sorted(set(state) - set(own))
            if unknown:
                raise KeyError(f"rollout weights: names the model does not have: {unknown[:5]}")
            tied = {k for k in own if _is_tied(self.model, k)}
            missing = sorted(set(own) - set(state) - tied)
            if missing:
                raise KeyError(f"rollout weights: the trainer sent no {missing[:5]}")
            for name, tensor in state.items():
                own[name].copy_(tensor.to(own[name].dtype))

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = int(global_steps)

    async def get_stats(self) -> dict[str, Any]:
        return {
            **self.stats,
            "global_steps": self.global_steps,
            "weights_version": self.weights_version,
            "num_threads": self.num_threads,
        }

    async def ready(self) -> bool:
        return True

    # ------------------------------------------------------------------ verl's control calls
    # There is no device memory to free or KV cache to keep between requests: the calls verl's
    # replica, checkpoint engine and trainer make around generation are accepted and do nothing.
    async def wake_up(self, tags: list[str] | None = None) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None

    async def wait_for_requests_to_drain(self) -> None:
        while self._queue or (self._worker is not None and not self._worker.done()):
            await asyncio.sleep(0.01)

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False) -> dict[str, Any]:
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        return None

    async def resume_engine_generation(self) -> None:
        return None

    async def open_submission_gate(self) -> None:
        return None


def _eos_ids(model_config: HFModelConfig, model: Any) -> list[int]:
    """End-of-sequence ids: the generation config's and the tokenizer's (as vLLM stops on both)."""
    ids: list[int] = []
    sources = (model.generation_config, model_config.generation_config)
    for source in (getattr(g, "eos_token_id", None) for g in sources):
        if source is None:
            continue
        ids += [int(x) for x in (source if isinstance(source, (list, tuple)) else [source])]
    tok = getattr(model_config, "tokenizer", None)
    if tok is not None and getattr(tok, "eos_token_id", None) is not None:
        ids.append(int(tok.eos_token_id))
    return list(dict.fromkeys(ids))


def _is_tied(model: Any, name: str) -> bool:
    """Whether ``name`` is the output embedding tied to the input embedding."""
    if not getattr(model.config, "tie_word_embeddings", False):
        return False
    out = model.get_output_embeddings()
    return out is not None and name.startswith("lm_head") and out.weight is model.get_input_embeddings().weight


class HFServerAdapter(BaseRollout):
    """The trainer worker's handle on its replica's :class:`HFRolloutServer` (verl's rollout
    interface, ``verl/workers/rollout/base.py: BaseRollout``). Weight updates: every rank
    consumes verl's generator (its tensors may be gathered collectively); rollout rank 0 of the
    replica sends the full state to the server."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, replica_rank: int = -1) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", 0))
        world = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.rollout_rank = rank % world
        self.server_handle: Any = None

    def _server(self) -> Any:
        if self.rollout_rank != 0:
            return None
        if self.server_handle is None:
            self.server_handle = ray.get_actor(f"{self.config.name}_server_{self.replica_rank}_0")
        return self.server_handle

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None] | Iterable[tuple[str, torch.Tensor]],
        wire_format: str = "named_tensors",
        global_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Send the trainer's weights to the server.

        Raises:
            NotImplementedError: for delta updates or an unmerged LoRA adapter (``peft_config``).
        """
        if wire_format != "named_tensors":
            raise NotImplementedError(f"rollout.name=hf takes full tensors, not wire_format={wire_format!r}")
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError("rollout.name=hf syncs merged weights only (model.lora.merge=true)")
        state = {}
        for name, tensor in weights:
            t = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
            state[name] = t.detach().to("cpu", copy=True).contiguous()
        server = self._server()
        if server is not None:
            await server.update_weights.remote(state, global_steps)


class HFReplica(RolloutReplica):
    """A replica of the ``hf`` engine: one :class:`HFRolloutServer` actor on the node of its
    trainer worker (hybrid mode: the trainer's workers hold the adapters)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_class = ray.remote(HFRolloutServer)

    async def launch_servers(self) -> None:
        if self.world_size != 1 or len(self.workers) != 1:
            raise ValueError(
                "rollout.name=hf serves one worker per replica: rollout tensor/data/pipeline parallel sizes must be 1"
            )
        node_id = await self.workers[0].__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
        suffix = "_reward" if self.is_reward_model else "_teacher" if self.is_teacher_model else ""
        name = f"{self.config.name}_server{suffix}_{self.replica_rank}_0{self.name_suffix}"
        affinity = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
        server = self.server_class.options(
            scheduling_strategy=affinity,
            name=name,
            max_concurrency=self.max_concurrency,
            num_cpus=0,
        ).remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank, node_rank=0)
        await server.ready.remote()
        self.servers.append(server)
        self._server_handle = server
        self._server_address = f"{self.config.name}://{name}"
