"""LanceDB Sync: keeps a per-user LanceDB index of a person's documents up to date."""

__version__ = "0.1.0"

import os as _os

# LanceDB's native library logs its own warnings (k-means on repetitive data, …) straight to
# stderr; they mean nothing to a user and would land in the middle of the CLI's output. Errors
# still show, and reach us as exceptions anyway. A user's own setting wins.
_os.environ.setdefault("LANCEDB_LOG", "error")
