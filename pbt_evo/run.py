"""``python -m pbt_evo.run``: see :mod:`pbt_evo.cli.launch` (the command line) and :mod:`pbt_evo.cli.run`."""

import sys

from .cli.launch import main

if __name__ == "__main__":
    sys.exit(main())
