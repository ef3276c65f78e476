"""``python -m losszoo`` (and ``torchrun ... -m losszoo``): the ``losszoo`` command."""

import sys

from losszoo.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
