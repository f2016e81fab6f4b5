"""``python -m pbt_evo.replay``: see :mod:`pbt_evo.cli.replay`."""

import sys

from .cli.replay import main

if __name__ == "__main__":
    sys.exit(main())
