"""``python -m cellsynth.cli``: the console script."""

import sys

from cellsynth.cli import main

sys.exit(main())
