"""``python -m siftdata …`` (and ``torchrun … -m siftdata …``): the ``siftdata`` command."""

import sys

from .cli.main import main

sys.exit(main())
