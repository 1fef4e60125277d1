"""Latency as a search constraint: a per-op lookup table (as NAS-BERT and HAT do).

A :class:`LatencyTable` times the C, A and F sub-layers (or any ops with settings: a stack of
``num_slots`` of each op, divided by ``num_slots``) and the embeddings once per device, size,
batch shape and torch version, and caches the numbers in a JSON file; identity slots cost 0.
An arch's predicted latency is ``embeddings + sum over its slots``; because it is a sum of
per-op costs, the search space can use it exactly like parameters or MACs:

    table = LatencyTable.load_or_measure(size="small", batch_size=1, seq_len=128, calibrate=8)
    space = SearchSpace(max_latency=12.0, latency=table.costs())

The raw sum misses what a whole model adds (the embeddings' and the encoder's fixed costs, memory
traffic between slots): on this project's CPU it was off by 23-48% with Pearson 0.31-0.87.
``calibrate=N`` (:meth:`LatencyTable.calibrate`) measures N random whole models and fits
``measured = sum_t c_t x (table time of the type-t slots) + b`` by least squares; the calibrated
table is still a per-op sum (op costs scaled by c_t, the embeddings' entry replaced by b), so it
stays an exact constraint. :func:`latency_report` says how well it predicts other whole models. torch is
imported inside the functions that time things, so this module imports without it.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lvbert.arch import LAYER_TYPES, Arch, Op, SizeConfig, get_size
from lvbert.errors import LvBertError
from lvbert.utils import atomic_write_json, lvbert_home


def default_latency_cache() -> Path:
    """``$LVBERT_CACHE/latency.json`` when that variable is set, else ``latency.json`` in lvbert's cache
    folder (``$LVBERT_HOME`` or ``~/.cache/lvbert``); read on each call, never at import."""
    folder = os.environ.get("LVBERT_CACHE")
    return (Path(folder).expanduser() if folder else lvbert_home()) / "latency.json"

DTYPES = ("float32", "bfloat16")


@dataclass
class LatencyTable:
    """Milliseconds per forward pass of one sub-layer of each type and of the embeddings."""

    per_type: dict[str, float]  # {"C": ms, "A": ms, "F": ms}; ops with settings by key ("C_kernel5")
    embeddings: float  # ms, embeddings incl. the E->H projection
    device: str  # "cpu" or "cuda:0"
    device_name: str  # e.g. "Intel(R) Xeon(R) ..." or "NVIDIA H100 80GB HBM3"
    size: dict  # SizeConfig fields
    batch_size: int
    seq_len: int
    dtype: str  # "float32" or "bfloat16" (autocast)
    torch_version: str
    threads: int  # torch.get_num_threads() when measured (CPU latency depends on it)
    repeats: int = 20
    measured_at: float = field(default_factory=time.time)
    calibration: dict | None = None  # {"scale": {type: c}, "offset": ms, "archs": [...], ...} (calibrate())

    @property
    def key(self) -> str:
        """Cache key: device, size, shape, dtype, torch version and threads."""
        return table_key(self.device_name, self.size, self.batch_size, self.seq_len, self.dtype, self.torch_version, self.threads)

    def predict(self, arch: str) -> float:
        """Predicted milliseconds of the backbone forward pass of ``arch``."""
        ops = Arch.parse(arch).normalized(self.size_config())
        missing = sorted({op.key for op in ops if op.type != "I" and op.key not in self.per_type})
        if missing:
            raise LvBertError(f"the latency table has no entry for {', '.join(missing)}; measure it with ops=[...]")
        costs = self.costs()
        return costs["embeddings"] + sum(costs[op.key] for op in ops if op.type != "I")

    def raw_predict(self, arch: str) -> float:
        """The uncalibrated sum: embeddings + the table's time of every slot."""
        ops = Arch.parse(arch).normalized(self.size_config())
        return self.embeddings + sum(self.per_type[op.key] for op in ops if op.type != "I")

    def costs(self) -> dict[str, float]:
        """The table as :class:`lvbert.space.SearchSpace` takes it (``latency=``), calibrated when it is."""
        if not self.calibration:
            return {**self.per_type, "embeddings": self.embeddings}
        scale = self.calibration["scale"]
        return {**{k: v * scale.get(k[0], 1.0) for k, v in self.per_type.items()}, "embeddings": self.calibration["offset"]}

    def calibrate(self, archs: list[str], repeats: int | None = None) -> dict:
        """Fit ``measured = sum_t c_t x table(type-t slots) + b`` on whole models of ``archs`` measured now;
        stores and returns the calibration (its fit error on those archs included)."""
        self.calibration = None
        feats, measured = [], []
        size = self.size_config()
        for arch in archs:
            ops = Arch.parse(arch).normalized(size)
            f: dict[str, float] = {}
            for op in ops:
                if op.type != "I":
                    f[op.type] = f.get(op.type, 0.0) + self.per_type[op.key]
            feats.append(f)
            measured.append(self.measure_model(arch, repeats))
        scale, offset = fit_latency(feats, measured)
        pred = [sum(scale.get(t, 1.0) * v for t, v in f.items()) + offset for f in feats]
        self.calibration = {"scale": scale, "offset": offset, "archs": list(archs), "measured_ms": measured,
                            "fit_mean_abs_rel_error": statistics.fmean(abs(p - m) / m for p, m in zip(pred, measured))}  # fmt: skip
        return self.calibration

    def size_config(self) -> SizeConfig:
        return SizeConfig(**self.size)

    def measure_model(self, arch: str, repeats: int | None = None) -> float:
        """Measured milliseconds of a whole ``LvBertModel`` forward pass of ``arch`` (same settings)."""
        return measure_model(arch, self.size_config(), self.batch_size, self.seq_len, self.device, self.dtype, repeats or self.repeats)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LatencyTable":
        return cls(**d)

    @classmethod
    def measure(
        cls,
        size: str | SizeConfig = "small",
        batch_size: int = 1,
        seq_len: int = 128,
        device: str = "cpu",
        dtype: str = "float32",
        repeats: int = 20,
        warmup: int = 3,
        ops=None,
    ) -> "LatencyTable":
        """Time the sub-layers of each op (default C, A, F) and the embeddings (fastest of ``repeats`` runs).

        A type's cost is the time of a stack of ``num_slots`` distinct sub-layers of that type
        divided by ``num_slots``: one sub-layer run again and again keeps its weights in the CPU
        cache, which a whole model does not (that underestimated whole models by ~40% on CPU).
        """
        import torch

        from lvbert.modeling_lvbert import LvBertConfig, LvBertEmbeddings, make_sublayer

        size_cfg, dev = _check(size, batch_size, seq_len, device, dtype, repeats)
        config = LvBertConfig.from_size(size_cfg, arch="A" * size_cfg.num_slots)
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, size_cfg.vocab_size, (batch_size, seq_len), generator=gen).to(dev)
        x = torch.randn(batch_size, seq_len, size_cfg.hidden_size, generator=gen).to(dev)
        emb = LvBertEmbeddings(config).to(dev).eval()
        per_type = {}
        stack = size_cfg.num_slots
        for op in _measured_ops(ops, size_cfg):
            per_type[op.key] = stack_ms([make_sublayer(op, config) for _ in range(stack)], x, dev, dtype, repeats, warmup)
        return cls(
            per_type=per_type,
            embeddings=time_ms(lambda: emb(ids), dev, dtype, repeats, warmup),
            device=str(dev),
            device_name=device_name(dev),
            size=size_cfg.to_dict(),
            batch_size=batch_size,
            seq_len=seq_len,
            dtype=dtype,
            torch_version=torch.__version__,
            threads=torch.get_num_threads(),
            repeats=repeats,
        )

    @classmethod
    def load_or_measure(
        cls,
        size: str | SizeConfig = "small",
        batch_size: int = 1,
        seq_len: int = 128,
        device: str = "cpu",
        dtype: str = "float32",
        cache: str | os.PathLike | None = None,
        remeasure: bool = False,
        repeats: int = 20,
        ops=None,
        calibrate: int = 0,
    ) -> "LatencyTable":
        """The cached table for this device and settings, measured and cached on first use;
        ``calibrate=N``: calibrated on N random whole models over the table's ops (also cached)."""
        import torch

        size_cfg, dev = _check(size, batch_size, seq_len, device, dtype, repeats)
        key = table_key(device_name(dev), size_cfg.to_dict(), batch_size, seq_len, dtype, torch.__version__, torch.get_num_threads())
        wanted = [op.key for op in _measured_ops(ops, size_cfg)]
        if wanted != list(LAYER_TYPES):
            key += " | ops " + ",".join(wanted)
        if calibrate:
            key += f" | calibrated {calibrate}"
        cache = Path(cache) if cache is not None else default_latency_cache()
        tables = _read_cache(cache)
        if key in tables and not remeasure:
            return cls.from_dict(tables[key])
        table = cls.measure(size_cfg, batch_size, seq_len, device, dtype, repeats, ops=ops)
        if calibrate:
            table.calibrate(calibration_archs(_measured_ops(ops, size_cfg), size_cfg.num_slots, calibrate), repeats)
        tables[key] = table.to_dict()
        atomic_write_json(cache, tables)
        return table


def _measured_ops(ops, size: SizeConfig) -> list:
    """The ops a table times: ``ops`` (normalised, identity left out: it costs 0), default C, A, F."""
    if ops is None:
        return [Op(t) for t in LAYER_TYPES]
    seen = []
    for op in Arch.parse(ops if not isinstance(ops, str) else ops).normalized(size):
        if op.type != "I" and op not in seen:
            seen.append(op)
    return seen


def calibration_archs(ops: list, num_slots: int, count: int, seed: int = 12345) -> list[str]:
    """``count`` archs for calibration: each draws its own mix of the ops (so the type counts vary
    widely, which the fit needs), then a slot-by-slot order; reproducible."""

    rng = random.Random(seed)
    tokens = [str(op) for op in ops]
    out = []
    for _ in range(count):
        weights = [rng.random() + 0.05 for _ in tokens]
        out.append(" ".join(rng.choices(tokens, weights=weights, k=num_slots)))
    return out


def fit_latency(features: list[dict[str, float]], measured: list[float]) -> tuple[dict[str, float], float]:
    """Least squares ``measured ~ sum_k c_k x features[k] + b`` with every c_k and b non-negative
    (a coefficient that would go negative is fixed at 0 and the rest refitted); returns (c, b)."""
    import numpy as np

    keys = sorted({k for f in features for k in f})
    active = list(keys)
    y = np.asarray(measured, dtype=float)
    while True:
        X = np.asarray([[f.get(k, 0.0) for k in active] + [1.0] for f in features], dtype=float)
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        neg = [k for k, c in zip(active, coef[:-1]) if c < 0]
        if not neg:
            break
        active = [k for k in active if k not in neg]
    scale = {k: 0.0 for k in keys} | {k: float(c) for k, c in zip(active, coef[:-1])}
    offset = float(coef[-1])
    if offset < 0:  # refit through the origin
        X = np.asarray([[f.get(k, 0.0) for k in active] for f in features], dtype=float)
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        scale |= {k: max(0.0, float(c)) for k, c in zip(active, coef)}
        offset = 0.0
    return scale, offset


def table_key(device_name: str, size: dict, batch_size: int, seq_len: int, dtype: str, torch_version: str, threads: int) -> str:
    widths = "h{hidden_size}-a{num_attention_heads}-f{intermediate_size}-e{embedding_size}-c{conv_heads}x{conv_kernel_size}-v{vocab_size}".format(**size)
    # "stacked": tables timed one sub-layer alone (an older method, ~40% low on CPU) are not reused
    return f"{device_name} | {widths} | b{batch_size} l{seq_len} {dtype} | torch {torch_version} | {threads} threads | stacked"


def device_name(device) -> str:
    """A readable name of the device the latency belongs to."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} (cpu)"


def measure_model(
    arch: str,
    size: str | SizeConfig = "small",
    batch_size: int = 1,
    seq_len: int = 128,
    device: str = "cpu",
    dtype: str = "float32",
    repeats: int = 20,
    warmup: int = 3,
) -> float:
    """Fastest milliseconds of a whole ``LvBertModel`` (embeddings + encoder) forward pass of ``arch``."""
    import torch

    from lvbert.modeling_lvbert import LvBertConfig, LvBertModel

    size_cfg, dev = _check(size, batch_size, seq_len, device, dtype, repeats)
    model = LvBertModel(LvBertConfig.from_size(size_cfg, arch=arch)).to(dev).eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, size_cfg.vocab_size, (batch_size, seq_len), generator=gen).to(dev)
    mask = torch.ones_like(ids)
    return time_ms(lambda: model(input_ids=ids, attention_mask=mask), dev, dtype, repeats, warmup)


def latency_report(table: LatencyTable, archs: list[str], repeats: int | None = None) -> dict:
    """How well the table's sum predicts measured whole-model latency over ``archs``.

    Returns per-arch predicted and measured milliseconds, the mean absolute relative error
    and the Pearson correlation between predicted and measured.
    """
    rows = []
    for arch in archs:
        predicted, measured = table.predict(arch), table.measure_model(arch, repeats)
        rows.append({"arch": arch, "predicted_ms": predicted, "raw_predicted_ms": table.raw_predict(arch),
                     "measured_ms": measured, "rel_error": (predicted - measured) / measured})  # fmt: skip
    p = [r["predicted_ms"] for r in rows]
    m = [r["measured_ms"] for r in rows]
    raw = [r["raw_predicted_ms"] for r in rows]
    return {
        "device": table.device_name,
        "key": table.key,
        "calibrated": bool(table.calibration),
        "archs": rows,
        "mean_abs_rel_error": sum(abs(r["rel_error"]) for r in rows) / len(rows),
        "pearson": pearson(p, m),
        "raw_mean_abs_rel_error": sum(abs(a - b) / b for a, b in zip(raw, m)) / len(rows),
        "raw_pearson": pearson(raw, m),
    }


def pearson(x: list[float], y: list[float]) -> float:
    """Pearson correlation; NaN when either side is constant or has fewer than two values."""
    if len(x) < 2 or len(x) != len(y):
        return float("nan")
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else float("nan")


# ----------------------------------------------------------------------------- helpers


def _check(size, batch_size: int, seq_len: int, device: str, dtype: str, repeats: int):
    import torch

    size_cfg = get_size(size)
    if batch_size <= 0 or seq_len <= 0 or repeats <= 0:
        raise LvBertError(f"batch size, sequence length and repeats must be positive, got {batch_size}, {seq_len}, {repeats}")
    if seq_len > size_cfg.max_position_embeddings:
        raise LvBertError(f"seq_len {seq_len} is above the size's {size_cfg.max_position_embeddings} positions")
    if dtype not in DTYPES:
        raise LvBertError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise LvBertError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LvBertError(f"device {device} asked for but CUDA is not available")
    return size_cfg, dev


def stack_ms(layers: list, x, device, dtype: str, repeats: int, warmup: int) -> float:
    """Milliseconds per sub-layer of a stack of distinct ``layers`` run on ``x`` (see the module
    docstring: one layer timed alone stays in cache). No padding: the encoder passes
    ``attention_mask=None`` then (its fastest path)."""
    import torch

    stack = torch.nn.ModuleList(layers).to(device).eval()

    def run():
        h = x
        for layer in stack:
            h = layer(h, None, None)
        return h

    return time_ms(run, device, dtype, repeats, warmup) / len(stack)


def time_ms(fn, device, dtype: str, repeats: int, warmup: int) -> float:
    """Fastest wall milliseconds of ``fn()`` over ``repeats`` runs, under inference mode (and bf16
    autocast if asked). The minimum, not the median: on a shared machine the least disturbed
    run is the one that measures the model rather than the neighbours."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    times = []
    with torch.inference_mode(), autocast:
        for i in range(warmup + repeats):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000.0)
    return min(times)


def _read_cache(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise LvBertError(f"latency cache {path} is not valid JSON; delete it to measure again") from None
    if not isinstance(data, dict):
        raise LvBertError(f"latency cache {path} is not a table of measurements; delete it to measure again")
    return data


def check_latency(result, table: dict, budget: float, count: int, out: Path) -> list[dict]:
    """Measure the ``count`` fittest archs of the search as whole models; write ``latency_check.json``
    and warn when the best one is over the budget for real."""

    lt = LatencyTable.from_dict(table["table"])
    best = sorted({r["arch"]: r for r in result.history}.values(), key=lambda r: -r["fitness"])[:count]
    rows = []
    for r in best:
        measured = lt.measure_model(r["arch"])
        rows.append({"arch": r["arch"], "fitness": r["fitness"], "predicted_ms": lt.predict(r["arch"]),
                     "measured_ms": measured, "within_budget": measured <= budget})  # fmt: skip
    atomic_write_json(Path(out) / "latency_check.json", {"max_latency_ms": budget, "archs": rows})
    top = rows[0]
    print(f"latency of the best arch measured: {top['measured_ms']:.2f} ms (table {top['predicted_ms']:.2f} ms, "
          f"budget {budget} ms)")  # fmt: skip
    if not top["within_budget"]:
        ok = next((r for r in rows if r["within_budget"]), None)
        alt = (f"; the fittest measured within it is {ok['arch']} (fitness {ok['fitness']:.4f}, {ok['measured_ms']:.2f} ms)"
               if ok else f"; none of the {len(rows)} fittest is within it")  # fmt: skip
        warnings.warn(f"the best arch takes {top['measured_ms']:.2f} ms measured, over --max-latency {budget}{alt} "
                      "(latency_check.json)", stacklevel=2)  # fmt: skip
    return rows

