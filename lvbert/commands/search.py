"""``lvbert search``: evolutionary (or random) search of a trained supernet, a thin wrapper over
:func:`lvbert.recipes.search.search`."""

from __future__ import annotations

from lvbert.options import add_options, resolve_run


def register(sub) -> None:
    from lvbert.recipes.search import SearchRunConfig

    p = sub.add_parser(
        "search",
        help="search a trained supernet for the best arch under a budget (evolution or random)",
        description="Fitness = masked-LM accuracy of an arch's path through the supernet (inherited weights) on a "
        "fixed-mask validation set. SPOS evolution by default (population 50, 20 generations, 10 parents, 25 "
        "mutations, 25 crossovers); --strategy random proposes as many candidates uniformly. Writes history.jsonl, "
        "best.json, top.md, fitness.png and top_archs.png to --out. Runs on one process, or on several under "
        "torchrun / accelerate launch (candidates spread over the processes).",
    )
    add_options(p, SearchRunConfig, resume=True)
    p.set_defaults(func=run, config_class=SearchRunConfig)


def run(args) -> int:
    from lvbert.recipes.search import SearchRunConfig, search

    cfg, resume = resolve_run(SearchRunConfig, args)  # nothing in DIR/history.jsonl is evaluated again
    search(cfg, resume=resume)
    return 0
