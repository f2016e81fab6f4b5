"""``python -m pbt_evo.sweep``: see :mod:`pbt_evo.cli.sweep`."""

import sys

from .cli.sweep import main

if __name__ == "__main__":
    sys.exit(main())
