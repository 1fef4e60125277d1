"""Fitness of an arch = masked-LM accuracy of its path through the supernet (the LV-BERT paper's search).

The weights are inherited from the supernet: nothing is trained. The validation batch
has fixed masks, and correct predictions are counted exactly (integers), so evaluating
the same arch twice gives the same number. Needs torch.

Evaluating many archs is made cheap without changing any number:

- the embeddings' output does not depend on the arch: it is computed once per validation
  chunk and kept;
- the archs of one call are evaluated chunk by chunk in lexicographic order of their op keys,
  and the output of every slot is kept in a :class:`PrefixCache` keyed by (chunk, op keys of
  slots 0..i), an LRU with a byte budget (``cache_mb``; among the states of one arch the
  deepest go first, so a budget below a whole path keeps the shared shallow prefixes). An arch
  whose first i slots equal those of an arch evaluated before starts from that arch's hidden
  state after slot i. Evolution's children share long prefixes with each other, so a
  generation evaluated in one call skips about 30% of its slot passes
  (``benchmarks/bench_fitness.py``); ``lvbert search`` passes ``--fitness-chunk`` archs per
  call (default 10); called with one arch at a time, less survives from one call to the next.

A cached state is the very tensor the plain path computed from the same input with the same
layers in the same dtype (the supernet's eval mode: no dropout), so a candidate's fitness
never depends on what was evaluated before it, nor on the cache size (a test checks this
bit for bit). The MLM head runs on the masked positions in blocks of ``head_rows`` rows
(the [masked, vocabulary] logits of a whole chunk are hundreds of MB; a block stays in
cache): the accuracy counts equal :func:`lvbert.objectives.mlm.evaluate_mlm`'s, the mean loss
agrees to float rounding (it is summed in another order).
"""

from __future__ import annotations

import os
import shutil
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from lvbert import threads
from lvbert.modeling_lvbert import attention_bias
from lvbert.objectives.mlm import unigram_accuracy

BATCH_KEYS = ("input_ids", "attention_mask", "token_type_ids", "labels")
DEFAULT_CACHE_MB = 512.0
DEFAULT_HEAD_ROWS = 128


def cxx_compiler() -> str | None:
    """The C++ compiler torch.compile's CPU backend would use (``$CXX``, else g++, c++ or clang++), or None."""

    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


class PrefixCache:
    """Tensors under a byte budget, evicted least recently used first.

    Every entry has a priority, by default the time of its last ``put`` / ``get`` (plain LRU);
    ``put`` evicts the entries of lowest priority until the total fits. The fitness passes
    ``(pass, -depth)``: the states of the arch evaluated longest ago go first and, among those of
    one pass, the deepest first -- when a budget holds less than a whole path, the shallow
    prefixes that many archs share are the ones kept. A tensor larger than the budget is not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"the cache budget must not be negative, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._items: dict = {}  # key -> [priority, tensor]
        self._clock = 0
        self.nbytes = 0
        self.hits = self.misses = self.evictions = 0

    @staticmethod
    def size_of(t: torch.Tensor) -> int:
        return t.numel() * t.element_size()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        return key in self._items

    def _now(self, priority):
        if priority is None:
            self._clock += 1
            return (self._clock,)
        return priority

    def get(self, key, priority=None):
        """The tensor under ``key`` (its priority refreshed), or None; counted as a hit or a miss."""
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        item[0] = self._now(priority)
        self.hits += 1
        return item[1]

    def deepest(self, keys, refresh: bool = True):
        """``(i, tensor)`` for the first of ``keys`` held (one hit; its priority refreshed unless
        ``refresh`` is False), or ``(None, None)`` (one miss)."""
        for i, key in enumerate(keys):
            item = self._items.get(key)
            if item is not None:
                if refresh:
                    item[0] = self._now(None)
                self.hits += 1
                return i, item[1]
        self.misses += 1
        return None, None

    def touch(self, key, priority=None) -> None:
        """Refresh an entry's priority (not a hit); nothing when absent."""
        item = self._items.get(key)
        if item is not None:
            item[0] = self._now(priority)

    def put(self, key, t: torch.Tensor, priority=None) -> None:
        size = self.size_of(t)
        if key in self._items:
            self.nbytes -= self.size_of(self._items.pop(key)[1])
        if size > self.max_bytes:
            return
        self._items[key] = [self._now(priority), t]
        self.nbytes += size
        while self.nbytes > self.max_bytes:  # a linear scan: a cache holds tens to hundreds of states
            old = min(self._items, key=lambda k: self._items[k][0])
            self.nbytes -= self.size_of(self._items.pop(old)[1])
            self.evictions += 1

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0

    def info(self) -> dict:
        return {"entries": len(self._items), "bytes": self.nbytes, "max_bytes": self.max_bytes,
                "hits": self.hits, "misses": self.misses, "evictions": self.evictions}  # fmt: skip


class SupernetFitness:
    """``fitness_fn`` for :func:`lvbert.search.run_search` backed by a pre-trained supernet.

    Args:
        supernet: an ``LvBertSupernet`` (its ``lvbert.embeddings``, ``lvbert.encoder.slots`` and
            ``mlm_head`` are run directly, in eval mode; the mode it had is restored).
        valid_batch: tensors ``input_ids``, ``labels`` (-100 where not masked), optionally
            ``attention_mask`` and ``token_type_ids``, each [N, L]: the fixed-mask validation set.
        batch_size: sequences per forward pass (a validation chunk).
        bf16: run under bfloat16 autocast.
        cache_mb: byte budget of the prefix cache in MiB (0: no reuse between archs; the
            embeddings' output, N x L x H, is kept regardless).
        head_rows: masked positions per block of the MLM head's vocabulary projection.
        compile: run every slot's sub-layer and the MLM head's blocks (the last one padded to
            ``head_rows``) through ``torch.compile`` (inductor; on CPU it needs a C++ compiler). One
            graph per sub-layer type and input shape, built on first use (seconds); elementwise work
            is fused, so the numbers agree with the eager path to the dtype's rounding, not bit for
            bit (``tests/test_search_cache.py`` bounds the difference). The cache, the order and the
            grouping still change nothing.

    Calling it with several archs evaluates them together in prefix order (the results come
    back in the given order); with one arch it is :meth:`evaluate`. Numbers never depend on
    the order, the grouping or the cache. The caches are dropped when a parameter of the
    supernet changes (in-place update, another device) or ``bf16`` / ``batch_size`` change.
    """

    def __init__(self, supernet: torch.nn.Module, valid_batch: dict, batch_size: int = 64, bf16: bool = False,
                 cache_mb: float = DEFAULT_CACHE_MB, head_rows: int = DEFAULT_HEAD_ROWS,
                 compile: bool = False) -> None:  # fmt: skip
        if "input_ids" not in valid_batch or "labels" not in valid_batch:
            raise ValueError("valid_batch needs 'input_ids' and 'labels'")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if cache_mb is None or cache_mb < 0:
            raise ValueError(f"cache_mb must be >= 0 (0 turns the prefix cache off), got {cache_mb}")
        if head_rows <= 0:
            raise ValueError(f"head_rows must be positive, got {head_rows}")
        if compile and next(supernet.parameters()).device.type == "cpu" and cxx_compiler() is None:
            raise ValueError("compile=True needs a C++ compiler on CPU (torch.compile's inductor backend): "
                             "install g++ (or set CXX), or leave compiling off")  # fmt: skip
        self.supernet = supernet
        self.batch = {k: valid_batch[k] for k in BATCH_KEYS if valid_batch.get(k) is not None}
        n = {v.shape[0] for v in self.batch.values()}
        if len(n) != 1:
            raise ValueError(f"valid_batch tensors disagree on the number of sequences: {sorted(n)}")
        self.num_sequences = n.pop()
        self.batch_size = batch_size
        self.bf16 = bf16
        self.head_rows = head_rows
        self.compile = bool(compile)
        self._compiled: dict = {}  # (slot, op key) -> the compiled sub-layer
        self._head_block = None  # the compiled head block
        self.cache = PrefixCache(int(cache_mb * 2**20))
        self.slots_computed = self.slots_reused = 0  # slot forward passes run / skipped thanks to the cache
        self._pass = 0  # one per (chunk, path) evaluated: the cache's recency
        self._on_device: tuple[torch.device, dict] | None = None  # the batch moved once, not per candidate
        self._chunks: list[dict] | None = None  # per validation chunk: inputs, masks, embeddings' output
        self._state: tuple | None = None  # what the cached tensors were computed with

    # ------------------------------------------------------------------ public interface

    def __call__(self, archs: list[str]) -> list[dict]:
        archs = list(archs)
        if len(archs) == 1:
            return [self.evaluate(archs[0])]
        return self._evaluate_all(archs)

    def evaluate(self, arch: str) -> dict:
        """``fitness`` (masked-LM accuracy), ``loss`` (mean CE per masked token) and ``masked`` (count)."""
        return self._evaluate_all([arch])[0]

    def unigram_accuracy(self) -> float:
        """The fitness of a path that predicts the most frequent masked word everywhere (the plateau)."""

        return unigram_accuracy(self.batch)

    def cache_info(self) -> dict:
        """Entries, bytes, hits, misses, evictions of the prefix cache; slot passes computed and reused."""
        return {**self.cache.info(), "slots_computed": self.slots_computed, "slots_reused": self.slots_reused}

    # ------------------------------------------------------------------ evaluation

    def _batch_on(self, device: torch.device) -> dict:
        if self._on_device is None or self._on_device[0] != device:
            self._on_device = (device, {k: v.to(device) for k, v in self.batch.items()})
        return self._on_device[1]

    def _check_state(self, device: torch.device) -> None:
        """Drop every cached tensor when the weights, the device or the settings have changed."""
        state = (device, self.bf16, self.batch_size,
                 tuple((p.data_ptr(), p._version) for p in self.supernet.parameters()))  # fmt: skip
        if state != self._state:
            self.cache.clear()
            self._chunks = None
            self._state = state

    def _path_keys(self, arch: str) -> tuple[str, ...]:
        net = self.supernet
        keys = net.path_keys(arch)
        if len(keys) != net.num_slots or any(k not in slot for k, slot in zip(keys, net.lvbert.encoder.slots)):
            net.check_arch(arch)  # the one-line error naming the slot
        return keys

    def _prepare_chunks(self, device: torch.device) -> list[dict]:
        """Per chunk of ``batch_size`` sequences: what every path needs, the embeddings' output included
        (computed as the supernet's forward does; call under the evaluation's autocast)."""

        if self._chunks is not None:
            return self._chunks
        batch = self._batch_on(device)
        embeddings = self.supernet.lvbert.embeddings
        chunks = []
        for start in range(0, self.num_sequences, self.batch_size):
            b = {k: v[start : start + self.batch_size] for k, v in batch.items()}
            labels = b["labels"]
            selected = labels != -100
            targets = labels[selected]
            if targets.numel() == 0:  # skipped, as evaluate_mlm does
                continue
            mask = b.get("attention_mask")
            bias = attention_bias(mask)
            if bias is None:
                mask = None  # no padding: the encoder skips masking work
            x = embeddings(b["input_ids"], b.get("token_type_ids"), None)
            chunks.append({"x": x, "mask": mask, "bias": bias, "selected": selected, "targets": targets})
        self._chunks = chunks
        return chunks

    def _sublayer(self, i: int, key: str):
        """Slot ``i``'s sub-layer ``key``, compiled once under ``compile``. Static shapes: every input
        shape (a partial last chunk, a chunk with padding) gets its own graph, so the graph that runs
        on a chunk, and with it the numbers, never depends on the chunks seen before."""
        module = self.supernet.lvbert.encoder.slots[i][key]
        if not self.compile:
            return module
        fn = self._compiled.get((i, key))
        if fn is None:
            fn = self._compiled[(i, key)] = torch.compile(module, dynamic=False)
        return fn

    def _decoder(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The MLM decoder's weight and bias, cast once to bfloat16 under ``bf16`` (the cast autocast
        would otherwise repeat for every block of rows: a [vocabulary, E] copy each time)."""
        decoder = self.supernet.mlm_head.decoder
        w, b = decoder.weight, decoder.bias
        if self.bf16 and torch.is_autocast_enabled(w.device.type):
            dtype = torch.get_autocast_dtype(w.device.type)
            w, b = w.to(dtype), (b.to(dtype) if b is not None else None)
        return w, b

    def _head(self, h: torch.Tensor, chunk: dict, decoder: tuple) -> tuple[int, float]:
        """(correct, summed cross-entropy) of the MLM head at the chunk's masked positions;
        ``decoder``: :meth:`_decoder`'s weight and bias."""

        head = self.supernet.mlm_head
        z = head.LayerNorm(head.act(head.dense(h[chunk["selected"]])))  # as the head's forward, before the decoder
        targets = chunk["targets"]
        correct, loss_sum = 0, 0.0
        if self.compile:  # one static shape: the last block padded with rows the counts ignore
            if self._head_block is None:
                self._head_block = torch.compile(_head_block, dynamic=False)
            pad = -z.shape[0] % self.head_rows
            z = F.pad(z, (0, 0, 0, pad))
            targets = F.pad(targets, (0, pad), value=-100)
        for s in range(0, z.shape[0], self.head_rows):
            block = (z[s : s + self.head_rows], *decoder, targets[s : s + self.head_rows])
            c, loss = (self._head_block or _head_block)(*block)
            correct += int(c)
            loss_sum += float(loss)
        return correct, loss_sum

    def _evaluate_all(self, archs: list[str]) -> list[dict]:
        threads.restore()  # the thread count a training stage's governor lowered: numbers must not follow the load
        net = self.supernet
        device = next(net.parameters()).device
        paths = {arch: self._path_keys(arch) for arch in archs}
        order = sorted(set(paths.values()))  # lexicographic: each path shares the longest prefix with the one before
        slots = net.lvbert.encoder.slots
        n = len(slots)
        counts = {keys: [0, 0, 0.0] for keys in order}  # correct, masked, summed loss (chunk by chunk, in order)
        was_training = net.training
        net.eval()
        try:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
                self._check_state(device)
                decoder = self._decoder()
                for c, chunk in enumerate(self._prepare_chunks(device)):
                    for keys in order:
                        self._pass += 1
                        x, depth = chunk["x"], 0
                        if self.cache.max_bytes:  # the deepest cached prefix of this path
                            i, t = self.cache.deepest(((c, keys[:d]) for d in range(n - 1, 0, -1)), refresh=False)
                            if t is not None:
                                x, depth = t, n - 1 - i
                                for d in range(1, depth + 1):  # the path runs through its shorter prefixes too
                                    self.cache.touch((c, keys[:d]), (self._pass, -d))
                        self.slots_reused += depth
                        for i in range(depth, n):
                            x = self._sublayer(i, keys[i])(x, chunk["mask"], chunk["bias"])
                            if i < n - 1 and self.cache.max_bytes:  # the last output is only reused by the same arch
                                self.cache.put((c, keys[: i + 1]), x, (self._pass, -(i + 1)))
                        self.slots_computed += n - depth
                        correct, loss_sum = self._head(x, chunk, decoder)
                        acc = counts[keys]
                        acc[0] += correct
                        acc[1] += int(chunk["targets"].numel())
                        acc[2] += loss_sum
        finally:
            net.train(was_training)
        out = []
        for arch in archs:
            correct, total, loss_sum = counts[paths[arch]]
            if total == 0:
                raise ValueError("the validation set has no masked positions (labels are all -100)")
            out.append({"fitness": correct / total, "loss": loss_sum / total, "masked": total})
        return out


def _head_block(z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor):
    """(correct, summed cross-entropy) of one block of masked positions: the decoder, then the
    first maximum (as ``masked_accuracy``) and fp32 cross-entropy; targets -100 count for nothing."""

    logits = F.linear(z, weight, bias)
    correct = (logits.max(-1).indices == targets).sum()
    return correct, F.cross_entropy(logits.float(), targets, reduction="sum", ignore_index=-100)


def distributed_fitness(fitness_fn: Callable[[list[str]], list[dict]]) -> Callable[[list[str]], list[dict]]:
    """Spread a batch of archs over the processes of ``torch.distributed`` and gather the results.

    Rank r evaluates archs r, r + W, r + 2W, ...; every rank receives all results in the
    original order, so each rank's :func:`run_search` (same seed) proposes the same archs.
    Run ``run_search(..., write=(rank == 0))`` so that only one process writes files.
    Without an initialised process group this is ``fitness_fn`` itself.
    """

    def call(archs: list[str]) -> list[dict]:
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return fitness_fn(archs)
        rank, world = dist.get_rank(), dist.get_world_size()
        mine = fitness_fn(archs[rank::world]) if archs[rank::world] else []
        gathered: list[list[dict] | None] = [None] * world
        dist.all_gather_object(gathered, mine)
        out: list[dict | None] = [None] * len(archs)
        for r, results in enumerate(gathered):
            for j, res in enumerate(results or []):
                out[r + j * world] = res
        return out  # type: ignore[return-value]

    return call
