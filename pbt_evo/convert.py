"""``python -m pbt_evo.convert runs/<name>``: see :mod:`pbt_evo.cli.convert`."""

import sys

from .cli.convert import main

if __name__ == "__main__":
    sys.exit(main())
