"""`python3 -m ces_sim` (with sim/ces on sys.path) runs the simulator."""

import sys

from .cli import main

sys.exit(main())
