"""``python -m siftdata …`` (and ``torchrun … -m siftdata …``): the ``siftdata`` command."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
