import sys

from avspot.search.cli import main

sys.exit(main())
