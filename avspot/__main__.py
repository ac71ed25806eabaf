"""``python -m avspot``: the ``avspot`` command."""

import sys

from avspot.search.cli.main import main

sys.exit(main())
