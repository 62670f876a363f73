"""Work beside search, not on its path: training an encoder on the catalog (training.py) and judging
search quality on graded queries (evaluation.py)."""
