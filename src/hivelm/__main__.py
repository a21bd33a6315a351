import sys

from hivelm.cli import main

sys.exit(main())
