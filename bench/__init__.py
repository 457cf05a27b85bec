"""`make bench`: the load benchmark of the production-like stack (see bench/run.py)."""
