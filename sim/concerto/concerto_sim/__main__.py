"""`python3 -m concerto_sim` (with sim/concerto on sys.path) runs the simulator."""

import sys

from .cli import main

sys.exit(main())
