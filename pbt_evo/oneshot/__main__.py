"""``python -m pbt_evo.oneshot rank CONFIG``: see :mod:`pbt_evo.cli.oneshot`."""

import sys

from ..cli.oneshot import main

sys.exit(main())
