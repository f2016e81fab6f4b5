"""``python -m pbt_evo.run``: see :mod:`pbt_evo.cli.run`."""

import sys

from .cli.run import main

if __name__ == "__main__":
    sys.exit(main())
