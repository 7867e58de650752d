"""`python -m hear_wavjepa ...` is the `hear-wavjepa` command."""

import sys

from hear_wavjepa.cli import main

sys.exit(main())
