"""``python -m pbt_evo.soup runs/<name>``: see :mod:`pbt_evo.cli.soup`."""

import sys

from ..cli.soup import main

sys.exit(main())
