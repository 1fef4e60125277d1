"""Per-op latency lookup table of a NAS space on this device (NAS-BERT's LUT), and its check
against measured whole models. Each op is timed as a stack of distinct sub-layers (one sub-layer
run again and again keeps its weights in cache, which a whole model does not), fastest of
``repeats`` runs, as :mod:`lvbert.search.latency` times LV-BERT's ops."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from lvbert.arch import SizeConfig
from lvbert.nas.space import Block, NasSpace
from lvbert.search.latency import device_name, fit_latency, measure_model, stack_ms, time_ms


@dataclass
class NasLatencyTable:
    ops: dict[str, float]  # "w128_A" -> ms per sub-layer
    projections: dict[str, float]  # "128>192" -> ms (first: "e>128", from the embedding width)
    embeddings: float  # ms of the embeddings
    batch_size: int = 1
    seq_len: int = 128
    threads: int = 1
    device: str = "cpu"
    meta: dict = field(default_factory=dict)

    calibration: dict | None = None  # {"scale": {"C"|"A"|"F"|"P": c}, "offset": ms, ...} (calibrate())

    def _scale(self, kind: str) -> float:
        return self.calibration["scale"].get(kind, 1.0) if self.calibration else 1.0

    def block_ms(self, block: Block) -> float:
        return sum(self.ops[f"w{block.width}_{t}"] * self._scale(t[0]) for t in block.ops if t != "I")

    def projection_ms(self, w_in: int | None, w_out: int) -> float:
        return self.projections[f"{'e' if w_in is None else w_in}>{w_out}"] * self._scale("P")

    def features(self, blocks: list[Block]) -> dict[str, float]:
        """The raw table time of each kind of slot (C, A, F, P) in one candidate per block."""
        f: dict[str, float] = {}
        prev = None
        for b in blocks:
            f["P"] = f.get("P", 0.0) + self.projections[f"{'e' if prev is None else prev}>{b.width}"]
            for t in b.ops:
                if t != "I":
                    f[t[0]] = f.get(t[0], 0.0) + self.ops[f"w{b.width}_{t}"]
            prev = b.width
        return f

    def predict(self, blocks: list[Block]) -> float:
        """Milliseconds of embeddings + encoder of one candidate per block (calibrated when it is)."""
        ms = self.calibration["offset"] if self.calibration else self.embeddings
        prev = None
        for b in blocks:
            ms += self.projection_ms(prev, b.width) + self.block_ms(b)
            prev = b.width
        return ms

    def calibrate(self, space: NasSpace, size: SizeConfig, archs: list[list[Block]], repeats: int = 10) -> dict:
        """Fit ``measured = sum_kind c_kind x table time + b`` on whole models measured now (as
        :meth:`lvbert.search.latency.LatencyTable.calibrate`)."""

        self.calibration = None
        feats = [self.features(blocks) for blocks in archs]
        measured = [measure_arch(str(space.arch(blocks)), size, self.batch_size, self.seq_len, repeats=repeats)
                    for blocks in archs]  # fmt: skip
        scale, offset = fit_latency(feats, measured)
        self.calibration = {"scale": scale, "offset": offset, "archs": [[str(b) for b in bl] for bl in archs],
                            "measured_ms": measured}  # fmt: skip
        pred = [self.predict(bl) for bl in archs]
        self.calibration["fit_mean_abs_rel_error"] = statistics.fmean(abs(p - m) / m for p, m in zip(pred, measured))
        return self.calibration

    def to_dict(self) -> dict:
        return {"ops": self.ops, "projections": self.projections, "embeddings": self.embeddings,
                "batch_size": self.batch_size, "seq_len": self.seq_len, "threads": self.threads,
                "device": self.device, "meta": self.meta, "calibration": self.calibration}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> "NasLatencyTable":
        return cls(**d)

    @classmethod
    def measure(cls, space: NasSpace, size: SizeConfig, batch_size: int = 1, seq_len: int = 128, device: str = "cpu",
                repeats: int = 10, warmup: int = 2, stack: int = 4) -> "NasLatencyTable":  # fmt: skip
        import torch

        from lvbert.modeling_lvbert import LvBertConfig, LvBertEmbeddings, make_sublayer

        dev = torch.device(device)
        config = LvBertConfig.from_size(size, arch="F")
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, size.vocab_size, (batch_size, seq_len), generator=gen).to(dev)
        ops = {}
        for w in space.widths:
            x = torch.randn(batch_size, seq_len, w, generator=gen).to(dev)
            for t in space.op_tokens:
                layers = [make_sublayer(space.op(t, w), config, w) for _ in range(stack)]
                ops[f"w{w}_{t}"] = stack_ms(layers, x, dev, "float32", repeats, warmup)
        projections = {}
        for w_in in [None, *space.widths]:
            d_in = size.embedding_size if w_in is None else w_in
            x = torch.randn(batch_size, seq_len, d_in, generator=gen).to(dev)
            for w in space.widths:
                lin = torch.nn.Linear(d_in, w).to(dev).eval()
                projections[f"{'e' if w_in is None else w_in}>{w}"] = time_ms(lambda lin=lin, x=x: lin(x), dev, "float32",
                                                                                 repeats, warmup)  # fmt: skip
        emb = LvBertEmbeddings(config).to(dev).eval()
        return cls(ops=ops, projections=projections, embeddings=time_ms(lambda: emb(ids), dev, "float32", repeats, warmup),
                   batch_size=batch_size, seq_len=seq_len, threads=torch.get_num_threads(), device=device_name(dev),
                   meta={"repeats": repeats, "stack": stack, "torch": torch.__version__})  # fmt: skip


def measure_arch(arch: str, size: SizeConfig, batch_size: int = 1, seq_len: int = 128, device: str = "cpu",
                 repeats: int = 10) -> float:  # fmt: skip
    """Fastest milliseconds of a whole model (embeddings + encoder) of ``arch``."""

    return measure_model(arch, size, batch_size, seq_len, device, "float32", repeats)
