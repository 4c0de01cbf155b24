"""``python -m server.cli``: the ``mediarec`` command without the installed script."""

import sys

from server.cli import main

sys.exit(main())
