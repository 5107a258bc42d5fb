"""Shared helpers for tests (importable from sandbox worker processes too)."""
