"""NAS-BERT (Xu et al., KDD 2021) on LV-BERT's notation: a block-wise distilled supernet over op
types and widths, progressive shrinking, and selection of one model per parameter / latency budget.

- :mod:`lvbert.nas.space`: the space (blocks, widths, candidates, bins, full archs); plain Python.
- :mod:`lvbert.nas.supernet`: the block supernets, the teacher's block outputs, extraction (torch).
- :mod:`lvbert.nas.select`: the best combinations of block candidates under budgets, the Pareto front.
- :mod:`lvbert.nas.shrink`: bins and progressive shrinking of each block's candidates.
- :mod:`lvbert.nas.run`: a NAS run folder read back (space, candidates, block supernets, teacher).
- :mod:`lvbert.nas.report`: the Pareto report (Markdown table and plot).

The recipes are ``lvbert/recipes/nas.py`` (``lvbert nas train`` and ``lvbert nas search``).
"""
