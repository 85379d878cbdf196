"""Use cases. They talk to storage through the ports in `ports`, never to adapters."""
