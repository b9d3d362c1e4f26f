"""`python -m marketplace_saas.entrypoints.cli`: the same as the `marketplace-saas` script."""

import sys

from marketplace_saas.entrypoints.cli import main

sys.exit(main())
