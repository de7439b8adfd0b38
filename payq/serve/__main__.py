"""``python -m payq.serve [OPTIONS]``: the same as ``payq serve [OPTIONS]`` (the local stack runs it so)."""

from payq.serve.command import serve_command

serve_command(prog_name="payq serve")
