"""``python -m toybench``: the command line (``toybench --help``)."""
import sys

from .cli import main

sys.exit(main())
