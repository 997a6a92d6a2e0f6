"""``python -m convscope``: the ``convscope`` command, for an environment whose scripts folder is
not on PATH (a notebook's kernel, ``sys.executable -m`` in a job script)."""

import sys

from convscope.cli import main

if __name__ == "__main__":
    sys.exit(main())
