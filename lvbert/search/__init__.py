"""Architecture search: evolution and random search (``evolution.py``), tables and plots
(``report.py``), the latency table (``latency.py``, torch imported lazily) and the
supernet-backed fitness (``fitness.py``, needs torch).

Importing this package does not import torch.
"""

from lvbert.search.evolution import EvolutionConfig, SearchResult, read_history, run_search

__all__ = ["EvolutionConfig", "SearchResult", "read_history", "run_search"]
