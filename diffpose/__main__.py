import sys

from diffpose.cli import main

sys.exit(main())
