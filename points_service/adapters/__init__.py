"""Adapters: Redis, SQL, files, metrics and logging. They import the domain, never above."""
