"""A NAS run folder (``lvbert nas train --out``) read back: its shared ``nas.json``, the latency
table, each block's surviving candidates and block supernet, and the teacher; and the smallest and
fastest combination its candidates allow (without visiting the combinations)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from lvbert.errors import LvBertError
from lvbert.model_dir import check_model_weights, load_model_config
from lvbert.nas.latency import NasLatencyTable
from lvbert.nas.space import Block, NasSpace
from lvbert.utils import human, read_text_file

NAS_JSON = "nas.json"



LATENCY_JSON = "latency.json"



def read_run_json(path: Path) -> dict:
    """A JSON file of a NAS run; one line naming the file when it is not UTF-8 or not JSON."""
    try:
        data = json.loads(read_text_file(path, "the NAS run's file"))
    except json.JSONDecodeError as e:
        raise LvBertError(f"the NAS run's file {path} is not valid JSON ({e.msg} on line {e.lineno}); train that part "
                          "again (lvbert nas train)") from None  # fmt: skip
    if not isinstance(data, dict):
        raise LvBertError(f"the NAS run's file {path} is not one lvbert nas train writes; train that part again")
    return data



def load_teacher(path):
    from lvbert.model_dir import load_mlm

    model, tokenizer, kind = load_mlm(path)
    if kind != "lvbert":
        raise LvBertError(f"{path} is a {kind} model; the NAS teacher must be an lvbert masked-LM model (its embeddings and "
                          "MLM head go into the chosen models): pre-train one with lvbert pretrain --objective mlm")  # fmt: skip
    return model, tokenizer



def load_nas_run(folder):
    """``(space, teacher, tokenizer, lut, blocks, rows)`` of a finished NAS run: the block supernets
    and, per block, the surviving candidates sorted by dev loss."""
    from safetensors.torch import load_file

    from lvbert.nas.supernet import NasBlock, sublayer_config

    folder = Path(folder)
    space, shared, rows = read_nas_run(folder)
    teacher, tokenizer = load_teacher(shared["teacher"])
    lut = NasLatencyTable.from_dict(read_run_json(folder / LATENCY_JSON))
    nets = []
    for n in range(space.num_blocks):
        net = NasBlock(space, teacher.config.hidden_size, sublayer_config(teacher.config, 0.0))
        net.load_state_dict(load_file(str(folder / f"block-{n}" / "block.safetensors")))
        nets.append(net.eval())
    return space, teacher.eval(), tokenizer, lut, nets, rows



def read_nas_run(folder) -> tuple:
    """``(space, nas.json, rows)`` of a finished NAS run without loading any weights: per block, the
    surviving candidates sorted by dev loss."""

    folder = Path(folder)
    if not (folder / NAS_JSON).is_file():
        raise LvBertError(f"{folder} is not a NAS run (no {NAS_JSON}); train one with lvbert nas train")
    shared = read_run_json(folder / NAS_JSON)
    space = NasSpace.from_dict(shared["space"])
    missing = [n for n in range(space.num_blocks) if not (folder / f"block-{n}" / "candidates.json").is_file()]
    if missing:
        raise LvBertError(f"{folder}: block(s) {missing} are not trained yet; run lvbert nas train --blocks "
                          f"{','.join(map(str, missing))} --resume {folder}")  # fmt: skip
    rows = []
    for n in range(space.num_blocks):
        r = read_run_json(folder / f"block-{n}" / "candidates.json")["candidates"]
        rows.append([{**x, "block": Block.parse(x["block"])} for x in sorted(r, key=lambda x: x["dev_loss"])])
    return space, shared, rows



def smallest_combination(space, rows, size, lut) -> tuple[int, float]:
    """The fewest parameters and the lowest table latency of any combination of the trained candidates.

    For fixed block widths both are sums over the blocks (a block's own count or time, plus its projection
    from the previous width), so the smallest candidate per block and width, over every sequence of widths,
    gives the exact minima without visiting the combinations."""
    per_block = []
    for block_rows in rows:
        widths: dict[int, list] = {}
        for r in block_rows:
            widths.setdefault(r["block"].width, []).append(r)
        per_block.append({w: (min(rs, key=lambda r: r["params"])["block"], min(lut.block_ms(r["block"]) for r in rs))
                          for w, rs in widths.items()})  # fmt: skip
    best_params, best_ms = None, None
    for ws in itertools.product(*(sorted(b) for b in per_block)):
        params = space.arch_params([b[w][0] for b, w in zip(per_block, ws)], size)
        ms = lut.predict([]) + sum(lut.projection_ms(p, w) + b[w][1] for b, p, w in zip(per_block, (None, *ws), ws))
        best_params = params if best_params is None else min(best_params, params)
        best_ms = ms if best_ms is None else min(best_ms, ms)
    return best_params, best_ms


def check_budgets(folder, budgets: list[tuple[str, int]], max_latency: float | None) -> None:
    """A one-line error for a target (``(name, parameters)``) or a latency budget that no combination of
    the NAS run's candidates in ``folder`` can meet (from its json files and the teacher's config: no
    weights loaded, no combination visited)."""
    space, shared, rows = read_nas_run(folder)
    check_model_weights(shared["teacher"], "the NAS run's teacher")
    tc = load_model_config(shared["teacher"])
    size = space.student_size(tc.embedding_size, tc.vocab_size, tc.max_position_embeddings, tc.type_vocab_size)
    lut = NasLatencyTable.from_dict(read_run_json(Path(folder) / LATENCY_JSON))
    params, ms = smallest_combination(space, rows, size, lut)
    for name, budget in budgets:
        if params > budget:
            raise LvBertError(f"target {name}: no combination of the trained candidates has at most {human(budget)} "
                              f"parameters (the smallest has {params:,}); raise the target")  # fmt: skip
    if max_latency is not None and ms > max_latency:
        raise LvBertError(f"--max-latency {max_latency}: no combination of the trained candidates is that fast (the "
                          f"fastest takes {ms:.2f} ms by the latency table); raise it")  # fmt: skip

