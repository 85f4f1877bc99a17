"""Call-recording archiver."""

__version__ = "0.1.0"
