"""``python -m entrodiag.cli``: the ``entrodiag`` command."""

import sys

from . import main

sys.exit(main())
