"""points-service: points and incentives for the 科普中国 science-informant programme."""

__version__ = "0.1.0"
