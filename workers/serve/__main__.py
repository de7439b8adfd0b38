"""``python -m workers.serve [OPTIONS]``: the same as ``payq serve [OPTIONS]`` (the local stack runs it so)."""

import sys

# through the payq group, not serve_command itself: workers.cli must be imported first (serve's command imports its support)
from workers.cli import main

main(args=["serve", *sys.argv[1:]], prog_name="payq")
