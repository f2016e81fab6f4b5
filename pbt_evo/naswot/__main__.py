"""``python -m pbt_evo.naswot CONFIG``: see :mod:`pbt_evo.cli.naswot`."""

import sys

from ..cli.naswot import main

sys.exit(main())
