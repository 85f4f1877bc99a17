"""Call-recording archiver."""

from importlib.metadata import PackageNotFoundError, version

# One source: ``version`` in pyproject.toml, read back from the installed package's
# metadata, so ``archiver --version``, the audit records and pip agree.
try:
    __version__ = version("archiver")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
