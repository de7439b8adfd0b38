"""``python -m payq.stack``: the supervisor, reading its stack spec from stdin."""

import sys

from payq.stack.supervisor import main

if __name__ == "__main__":
    sys.exit(main())
