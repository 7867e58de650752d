"""Baseline HEAR modules of the project's own (the tables' floor rows)."""
