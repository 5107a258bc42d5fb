"""LanceDB Sync: keeps a per-user LanceDB index of a person's documents up to date."""

__version__ = "0.1.0"
