import sys

from watui.cli.main import main

sys.exit(main())
