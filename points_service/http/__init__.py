"""The HTTP API (Litestar only here)."""
