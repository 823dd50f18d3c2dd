"""batchcopy: fast, safe bulk copies of Amazon Lightsail snapshots."""

__version__ = "0.1.0"

__all__ = ["__version__"]
