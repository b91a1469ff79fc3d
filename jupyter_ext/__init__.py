"""Jupyter extension (to come)."""
