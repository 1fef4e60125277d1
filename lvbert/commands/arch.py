"""``lvbert arch info``: notation, type counts, parameters and MACs of an architecture."""

from __future__ import annotations

import json

from lvbert.arch import NAMED_ARCHS, SIZES, TYPE_NAMES, arch_info, strip_diagram
from lvbert.utils import human


def register(sub) -> None:
    p = sub.add_parser("arch", help="architecture notation and counting")
    asub = p.add_subparsers(dest="arch_command", metavar="ACTION", parser_class=type(p))
    asub.required = True
    info = asub.add_parser(
        "info",
        help="canonical form, type counts, parameters and MACs of an architecture",
        description="Accepted notations: CCAF..., c-c-a-f, 'C C A F', '[0,0,1,2]' (0 conv, 1 attention, 2 FFN), "
        "or a name: " + "; ".join(f"{k}: {v}" for k, v in NAMED_ARCHS.items()),
    )
    info.add_argument("arch", help="architecture, e.g. CCAFFACFFACCAFCFACFCAAFA or lv-bert-small")
    info.add_argument("--size", default="small", choices=sorted(SIZES), help="size preset (default small)")
    info.add_argument("--seq-len", type=int, default=128, help="sequence length for MACs per token (default 128)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=run_info)


def run_info(args) -> int:
    info = arch_info(args.arch, size=args.size, seq_len=args.seq_len)
    if args.json:
        print(json.dumps(info))
        return 0
    c = info["counts"]
    print(f"arch            {info['arch']}")
    print(f"pairs           {strip_diagram(info['arch'])}")
    print(f"official codes  {info['codes']}")
    print(f"size            {info['size']} ({info['num_slots']} slots, hidden {info['size_config']['hidden_size']})")
    print("counts          " + ", ".join(f"{t} {c[t]} ({TYPE_NAMES[t]})" for t in "CAF"))
    print(f"params          {info['params']:,} ({human(info['params'])}, embeddings + encoder)")
    print(f"params+MLM head {info['params_with_mlm_head']:,} ({human(info['params_with_mlm_head'])})")
    print(f"MACs/token      {info['macs_per_token']:,} ({human(info['macs_per_token'])} at length {info['seq_len']})")
    return 0
