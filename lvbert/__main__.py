import sys

from lvbert.cli import main

sys.exit(main())
