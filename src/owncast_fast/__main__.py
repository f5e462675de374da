import sys

from owncast_fast.cli import main

sys.exit(main())
