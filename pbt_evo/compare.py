"""``python -m pbt_evo.compare``: see :mod:`pbt_evo.cli.compare`."""

import sys

from .cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
