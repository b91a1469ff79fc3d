"""The ``xcomposer`` MkDocs plugin: compose blocks become illustrated pages (see plugin.py)."""
