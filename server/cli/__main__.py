"""``python -m mediarec.server.cli``: the ``mediarec`` command without the installed script."""

import sys

from mediarec.server.cli import main

sys.exit(main())
