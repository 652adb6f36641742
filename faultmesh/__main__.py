"""``python -m faultmesh``: the command line, as the ``faultmesh`` console script."""

import sys

from faultmesh.cli import main

sys.exit(main())
