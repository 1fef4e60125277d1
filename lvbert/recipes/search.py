"""Recipe: search a trained supernet for the best arch under a budget (evolution or random).

Set up (check the supernet folder and the data, build the constrained space and check that
it is feasible), load the supernet and the fixed-mask validation set, run
:func:`lvbert.search.run_search`, print the summary. Output folder (``--out``):

    search_config.json   the space, the search settings and what the fitness depends on
    history.jsonl        one line per evaluated candidate (appended as evaluated; --resume reads it)
    best.json, top.md    the best arch, the best ten
    fitness.png          best and mean fitness per generation (with a sibling search of the other strategy)
    top_archs.png        a strip diagram of the top ten

Runs on one process, or on several under ``torchrun`` / ``accelerate launch``: every process
proposes the same candidates (same seed), evaluates its share and receives all results
(:func:`lvbert.search.fitness.distributed_fitness`); only rank 0 writes and prints.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from lvbert.data.masking import MaskingConfig, fixed_mask_validation
from lvbert.data.packed import open_data
from lvbert.errors import LvBertError
from lvbert.model_dir import check_supernet_data, check_supernet_dir, supernet_identity, trained_space
from lvbert.objectives.mlm import unigram_accuracy
from lvbert.options import option
from lvbert.search.evolution import STRATEGIES, EvolutionConfig, run_search
from lvbert.search.fitness import SupernetFitness, distributed_fitness
from lvbert.search.history import CONFIG
from lvbert.search.latency import LatencyTable, check_latency
from lvbert.search.report import summary_table
from lvbert.space import SearchSpace, narrow_allowed, parse_type_counts
from lvbert.training.distributed import broadcast_object, cleanup, setup_distributed
from lvbert.training.run import check_run_output
from lvbert.utils import check_out_dir, file_sha256, parse_count


@dataclass
class SearchRunConfig:
    supernet: str = option("supernet run folder (lvbert supernet train)", default=None)
    data: str = option("prepared data folder with the supernet's tokenizer; its valid split is the fitness set", default=None)
    out: str = option("output folder", default="runs/search")
    strategy: str = option("evolution, or random (uniform proposals, same number of candidates)", default="evolution")
    population: int = option("candidates per generation", default=50)
    generations: int = option("generations including the random generation 0", default=20)
    parents: int = option("best archs so far that breed each generation", default=10)
    mutations: int = option("mutants per generation", default=25)
    crossovers: int = option("uniform crossovers per generation", default=25)
    mutation_prob: float = option("per-slot re-draw probability of a mutant", default=0.1)
    seed: int = option("seed of the search's proposals", default=0)
    max_params: str | None = option("parameter budget of the backbone, e.g. 13.5M", default=None)
    max_macs: str | None = option("budget of encoder multiply-accumulates per token, e.g. 25M", default=None)
    max_latency: float | None = option("latency budget in ms on this device (per-type table, measured once and cached)",
                                   default=None)  # fmt: skip
    latency_batch_size: int = option("batch size at which latency is measured", default=1)
    latency_cache: str | None = option("latency table cache file (default $LVBERT_HOME/latency.json, ~/.cache/lvbert)", default=None)
    latency_calibrate: int = option("random whole models measured to calibrate the latency table (0: the raw sum of the "
                                "ops)", default=8)  # fmt: skip
    latency_check: int = option("with --max-latency: the best archs measured as whole models after the search "
                            "(latency_check.json)", default=5)  # fmt: skip
    allowed: str | None = option("narrow the supernet's layer types, e.g. AF (default: the supernet's)", default=None)
    min_counts: str | None = option("minimum slots per type, e.g. C=2,A=4", default=None)
    max_counts: str | None = option("maximum slots per type, e.g. C=8", default=None)
    valid_sequences: int = option("fixed-mask validation sequences of the fitness", default=256)
    valid_seed: int = option("seed of the validation masks", default=0)
    batch_size: int = option("sequences per forward pass", default=64)
    bf16: bool = option("bf16 autocast inference", default=False)
    cache_mb: float = option("fitness prefix cache in MiB: the slot outputs of archs sharing their first slots are "
                         "computed once (numbers unchanged; 0 turns it off)", default=512.0)  # fmt: skip
    fitness_chunk: int = option("archs per fitness call and process: the prefix cache reuses slot outputs among the archs "
                            "of one call (a generation's children share long prefixes); history.jsonl grows by this "
                            "many, so a kill loses at most this many evaluations", default=10)  # fmt: skip
    compile: bool = option("torch.compile the sub-layers and the MLM head for the fitness (inductor; on CPU it needs a "
                       "C++ compiler): faster after seconds of compiling, numbers equal to the eager ones to rounding",
                       default=False)  # fmt: skip
    device: str = option("auto, cpu, cuda", default="auto")
    progress: bool = option("one line per generation on stderr", default=True)
    overwrite: bool = option("replace an existing --out folder (its old contents are removed first)", default=False)

    def __post_init__(self) -> None:
        if not self.supernet:
            raise LvBertError("--supernet is required: a folder written by 'lvbert supernet train'")
        if not self.data:
            raise LvBertError("--data is required: a folder written by 'lvbert data prepare' with the supernet's tokenizer")
        if self.strategy not in STRATEGIES:
            raise LvBertError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        for name in ("latency_calibrate", "latency_check"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise LvBertError(f"--{name.replace('_', '-')} must be 0 or a positive integer, got {v!r}")
        for name in ("valid_sequences", "batch_size", "latency_batch_size", "fitness_chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise LvBertError(f"--{name.replace('_', '-')} must be a positive integer, got {v!r}")
        try:
            ok = float(self.cache_mb) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise LvBertError(f"--cache-mb must be a number of MiB >= 0 (0 turns the cache off), got {self.cache_mb!r}")
        if self.compile and self.device != "cuda":
            from lvbert.search.fitness import cxx_compiler

            if cxx_compiler() is None:
                raise LvBertError("--compile needs a C++ compiler on CPU (torch.compile's inductor backend): "
                                  "install g++ (or set CXX), or drop --compile")  # fmt: skip
        self.evolution_config()  # population, generations, ...: one-line errors now, not after loading
        self.limits()
        parse_type_counts(self.min_counts, "--min-counts")
        parse_type_counts(self.max_counts, "--max-counts")
        if self.allowed is not None:
            from lvbert.space import normalize_choices

            normalize_choices(self.allowed, 1)  # one-line error for a bad --allowed

    def evolution_config(self) -> EvolutionConfig:
        return EvolutionConfig(
            population=self.population,
            generations=self.generations,
            parents=self.parents,
            mutations=self.mutations,
            crossovers=self.crossovers,
            mutation_prob=self.mutation_prob,
            seed=self.seed,
            strategy=self.strategy,
        )

    def limits(self) -> dict:
        """``max_params``, ``max_macs`` as ints ("13.5M" read) and ``max_latency`` in ms; None when unset."""

        out = {}
        for name in ("max_params", "max_macs"):
            v = getattr(self, name)
            out[name] = None if v in (None, "") else parse_count(v)
            if out[name] is not None and out[name] <= 0:
                raise LvBertError(f"--{name.replace('_', '-')} must be positive, got {v!r}")
        lat = self.max_latency
        try:
            out["max_latency"] = None if lat in (None, "") else float(lat)
        except (TypeError, ValueError):
            raise LvBertError(f"--max-latency must be milliseconds, got {lat!r}") from None
        if out["max_latency"] is not None and out["max_latency"] <= 0:
            raise LvBertError(f"--max-latency must be positive, got {lat!r}")
        return out


# ----------------------------------------------------------------------------- checks


# ----------------------------------------------------------------------------- the recipe


def build_space(cfg: SearchRunConfig, supernet_dir: Path, latency: dict | None = None):
    """The constrained search space: the supernet's ``space.json`` narrowed by the config's constraints."""

    trained = trained_space(supernet_dir)
    limits = cfg.limits()
    return SearchSpace(
        num_slots=trained.num_slots,
        allowed=narrow_allowed(trained.allowed, cfg.allowed),
        max_params=limits["max_params"],
        max_macs=limits["max_macs"],
        max_latency=limits["max_latency"] if latency is not None else None,
        latency=latency,
        min_counts=parse_type_counts(cfg.min_counts, "--min-counts"),
        max_counts=parse_type_counts(cfg.max_counts, "--max-counts"),
        size=trained.size_config,
        seq_len=trained.seq_len,
    )


def search(cfg: SearchRunConfig, resume: bool = False, fitness_fn=None):
    """Run the search as configured; returns the :class:`lvbert.search.SearchResult` (on every process).

    ``fitness_fn`` replaces the supernet fitness (tests); by default it is
    :class:`~lvbert.search.fitness.SupernetFitness` spread over the processes.
    """

    supernet_dir = check_supernet_dir(cfg.supernet)
    main_process = int(os.environ.get("RANK", "0")) == 0  # others may see rank 0's files already
    if main_process or resume:
        out = check_run_output(cfg.out, {"--supernet": supernet_dir, "--data": cfg.data}, cfg.overwrite, resume,
                               marker=CONFIG, what="search")  # fmt: skip
    else:
        out = check_out_dir(cfg.out)
    data = open_data(cfg.data)
    sn_config = json.loads((supernet_dir / "config.json").read_text(encoding="utf-8"))
    sn_ident = supernet_identity(supernet_dir)
    data_ident = check_supernet_data(data, sn_ident, supernet_dir, int(sn_config.get("max_position_embeddings", 512)))
    space = build_space(cfg, supernet_dir)
    space.check_feasible()  # counts, params, MACs: before anything slow
    evo = cfg.evolution_config()

    info = setup_distributed(cfg.device)
    try:
        limits = cfg.limits()
        table = None
        if limits["max_latency"] is not None:
            table = _latency_table(cfg, space, info) if info.is_main else None
            table = broadcast_object(table, info)  # every rank must propose from the same space
            space = build_space(cfg, supernet_dir, latency=table["costs"])
            space.check_feasible()
        if info.is_main and table is not None:
            print(f"latency table ({table['key']}): " + ", ".join(f"{k} {v:.3f} ms" for k, v in table["costs"].items()))

        masking = MaskingConfig(mode=sn_ident["mask_mode"])
        valid = fixed_mask_validation(data, cfg.valid_sequences, seed=cfg.valid_seed, config=masking)
        n_valid = int(valid["input_ids"].shape[0])
        if info.is_main:
            note = f" (the valid split has no more; asked for {cfg.valid_sequences})" if n_valid < cfg.valid_sequences else ""
            print(f"fitness: MLM accuracy of {supernet_dir} paths on {n_valid} x {data_ident['seq_len']} validation "
                  f"tokens{note}, {'bf16' if cfg.bf16 else 'fp32'}, {info.world_size} process(es) on {info.device}; "
                  f"unigram baseline (the most frequent word everywhere) {unigram_accuracy(valid):.4f}")  # fmt: skip
        identity = {
            "supernet_sha256": file_sha256(supernet_dir / "model.safetensors"),
            "tokenizer": data_ident["tokenizer"],
            "data_seq_len": data_ident["seq_len"],
            "valid_sequences": n_valid,
            "valid_seed": cfg.valid_seed,
            "mask_mode": sn_ident["mask_mode"],
            "bf16": cfg.bf16,
        }
        if cfg.compile:  # compiled numbers differ from the eager ones by rounding: a resume must not mix them
            identity["compile"] = True
        if fitness_fn is None:
            from lvbert.supernet import LvBertSupernet

            supernet = LvBertSupernet.from_pretrained(str(supernet_dir)).to(info.device)
            if list(supernet.allowed) != trained_space(supernet_dir).allowed:
                raise LvBertError(f"{supernet_dir}: space.json disagrees with the supernet's config.json (allowed types)")
            fitness_fn = SupernetFitness(supernet, valid, batch_size=cfg.batch_size, bf16=cfg.bf16,
                                         cache_mb=float(cfg.cache_mb), compile=cfg.compile)  # fmt: skip
        result = run_search(
            space,
            distributed_fitness(fitness_fn),
            evo,
            out,
            resume=resume,
            progress=cfg.progress,
            # history.jsonl grows by fitness_chunk archs per process (default 1: a kill loses one evaluation)
            chunk_size=cfg.fitness_chunk * info.world_size,
            write=info.is_main,
            identity=identity,
            options=asdict(cfg),  # saved, so that 'lvbert search --resume DIR' alone continues
            baselines={"unigram_accuracy": unigram_accuracy(valid)},
        )
        if info.is_main and not cfg.progress:
            print(summary_table(result))
        if info.is_main and table is not None and cfg.latency_check:
            check_latency(result, table, limits["max_latency"], cfg.latency_check, out)
        return result
    finally:
        cleanup(info)


def _latency_table(cfg: SearchRunConfig, space, info) -> dict:
    table = LatencyTable.load_or_measure(
        size=space.size_config,
        batch_size=cfg.latency_batch_size,
        seq_len=space.seq_len,
        device=str(info.device),
        dtype="bfloat16" if cfg.bf16 else "float32",
        cache=cfg.latency_cache,
        ops=list(space.ops),
        calibrate=cfg.latency_calibrate,
    )
    if table.calibration:
        print(f"latency table calibrated on {len(table.calibration['archs'])} measured whole models (fit error "
              f"{table.calibration['fit_mean_abs_rel_error']:.1%})")  # fmt: skip
    return {"costs": table.costs(), "key": table.key, "table": table.to_dict()}


