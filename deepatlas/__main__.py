import sys

from deepatlas.cli import main

sys.exit(main())
