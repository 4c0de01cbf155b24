"""``python -m bench.real``: see bench/real/harness.py."""

import sys

from bench.real.harness import main

sys.exit(main())
