"""Run ``archiver rollup`` with rollups of at most ``ROLLUP_OBJECTS`` manifest objects
(a memory test's helper).

``python tests/support/rollup_cli.py N ARGS...`` runs ``archiver rollup ARGS...``
with :class:`~archiver.manifest.rollup_write.RollupWriter`'s ``max_objects`` at
``N`` instead of the format's 5,000. A reader holds one rollup at a time, as
large as the format lets it be (in the service's shape: 245 rollups at the
cap); two small test archives rolled up at 5,000 would each be one rollup a
writer of a different size, and what verify holds for one rollup would grow
with the archive. At a small cap both archives' rollups are the same size,
the larger archive has more of them, as the service's.
"""

from __future__ import annotations

import sys

from archiver.manifest.rollup_write import RollupWriter


def main() -> int:
    """Run ``archiver rollup`` on ``sys.argv[2:]`` at ``sys.argv[1]`` objects a rollup."""
    defaults = RollupWriter.__init__.__kwdefaults__
    assert defaults is not None  # noqa: S101 (a test helper)
    defaults["max_objects"] = int(sys.argv.pop(1))
    sys.argv[0] = "archiver"
    from archiver.__main__ import main as cli_main  # noqa: PLC0415 - after the default is set

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
