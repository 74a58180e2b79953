"""`python -m libkd_keras ...` is the `libkd` command."""

import sys

from libkd_keras.cli.main import main

sys.exit(main())
