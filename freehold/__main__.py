import sys

from freehold.cli import main

sys.exit(main())
