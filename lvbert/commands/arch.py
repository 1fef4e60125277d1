"""``lvbert arch info``: notation, type counts, parameters and MACs of an architecture."""

from __future__ import annotations

import json
from dataclasses import dataclass

from lvbert.arch import NAMED_ARCHS, arch_info, strip_diagram
from lvbert.errors import LvBertError
from lvbert.options import add_options, option, resolve
from lvbert.utils import human


@dataclass
class ArchInfoConfig:
    arch: str = option("architecture, e.g. CCAFFACFFACCAFCFACFCAAFA, lv-bert-small or 'C(kernel=5) A(heads=2) F I'",
                       default=None, positional=True, metavar="ARCH")  # fmt: skip
    size: str = option("size preset: tiny, small, medium, base", default="small")
    seq_len: int = option("sequence length for MACs per token", default=128)
    json: bool = option("print one JSON object", default=False)

    def __post_init__(self) -> None:
        if not self.arch:
            raise LvBertError("give an architecture, e.g. lvbert arch info lv-bert-small")


def register(sub) -> None:
    p = sub.add_parser("arch", help="architecture notation and counting")
    asub = p.add_subparsers(dest="arch_command", metavar="ACTION", parser_class=type(p))
    asub.required = True
    info = asub.add_parser(
        "info",
        help="canonical form, type counts, parameters and MACs of an architecture",
        description="Accepted notations: CCAF..., c-c-a-f, 'C C A F', '[0,0,1,2]' (0 conv, 1 attention, 2 FFN), "
        "slots with settings such as 'C(kernel=5) A(heads=2) F(ffn=512) I', "
        "or a name: " + "; ".join(f"{k}: {v.help}" for k, v in NAMED_ARCHS.items()),
    )
    add_options(info, ArchInfoConfig)
    info.set_defaults(func=run_info, config_class=ArchInfoConfig)


def run_info(args) -> int:
    cfg = resolve(ArchInfoConfig, args)
    info = arch_info(cfg.arch, size=cfg.size, seq_len=cfg.seq_len)
    if cfg.json:
        print(json.dumps(info))
        return 0
    c = info["counts"]
    print(f"arch            {info['arch']}")
    print(f"pairs           {strip_diagram(info['arch'])}")
    if info["codes"] is not None:
        print(f"official codes  {info['codes']}")
    print(f"size            {info['size']} ({info['num_slots']} slots, hidden {info['size_config']['hidden_size']})")
    print("counts          " + ", ".join(f"{t} {n} ({info['type_names'][t]})" for t, n in c.items() if n))
    print(f"params          {info['params']:,} ({human(info['params'])}, embeddings + encoder)")
    print(f"params+MLM head {info['params_with_mlm_head']:,} ({human(info['params_with_mlm_head'])})")
    print(f"MACs/token      {info['macs_per_token']:,} ({human(info['macs_per_token'])} at length {info['seq_len']})")
    return 0
