"""MkDocs plugin (to come)."""
