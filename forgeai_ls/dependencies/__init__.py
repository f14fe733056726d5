"""Declared dependencies: read, installed in a sandbox, cached as read-only environments."""
