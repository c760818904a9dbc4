"""``python -m ebmlab`` (and ``torchrun -m ebmlab``) runs the command-line tool."""

import sys

from .app.cli import main

sys.exit(main())
