"""``python -m archiver`` is the ``archiver`` command (also its console script's entry)."""

import gc
import sys


def main() -> int:
    """Run the command line (:func:`archiver.cli.main`) without collecting while it loads.

    The modules and settings loaded at start-up are hundreds of thousands of objects
    that live as long as the process; the cyclic collector would walk them again
    and again as they arrive (about 0.1 s of CPU per start) to find no garbage.
    :func:`archiver.cli.main` turns it back on before the command runs.
    """
    gc.disable()
    from archiver import memory  # noqa: PLC0415 - after gc.disable, on purpose
    from archiver.cli import main as cli_main  # noqa: PLC0415 - after gc.disable, on purpose

    memory.tune()  # large buffers go back to the system when freed (archiver.memory)

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
