"""``python -m pbt_evo.plot``: see :mod:`pbt_evo.cli.plot`."""

import sys

from .cli.plot import main

if __name__ == "__main__":
    sys.exit(main())
