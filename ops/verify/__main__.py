import sys

from ops.verify.cli import main

sys.exit(main())
