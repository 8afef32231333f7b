"""``python -m molgen ...`` runs the ``molgen`` command line (``python -X importtime -m molgen --help``)."""

import sys

from molgen.cli.main import main

sys.exit(main())
