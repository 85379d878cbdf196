"""Pure domain: events, rules, the engine, ledger values. Stdlib and msgspec only."""
