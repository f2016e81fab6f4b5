"""``python -m pbt_evo.dashboard``: see :mod:`pbt_evo.cli.dashboard`."""

import sys

from .cli.dashboard import main

if __name__ == "__main__":
    sys.exit(main())
