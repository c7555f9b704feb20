"""``python -m effscale.cli``: the same command line as the ``effscale`` console script."""

import sys

from effscale.cli import main

sys.exit(main())
