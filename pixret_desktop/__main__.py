import sys

from pixret_desktop.app import main

sys.exit(main())
