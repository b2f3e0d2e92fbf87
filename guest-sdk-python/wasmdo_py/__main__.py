import sys

from wasmdo_py.cli import main

sys.exit(main())
