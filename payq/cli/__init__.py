"""The ``payq`` command: enqueue jobs, run the sandbox, and the operator commands.

Exit codes are a contract that store backends and operators script against:
0 done, 2 invalid input (each problem named on stderr), 1 system fault (one
line naming the cause, e.g. Redis unreachable).
"""

from __future__ import annotations

import click

from payq.cli.enqueue import enqueue
from payq.cli.metrics import metrics
from payq.cli.notify import notify
from payq.cli.operator import dlq, job, stats, trip
from payq.cli.pace import pace
from payq.serve.command import console_group, serve_command, token_group
from payq.stack.demo import demo_command
from sandbox.cli import sandbox_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="payq")
def main() -> None:
    """payq: durable payment jobs between store backends and the payment API."""


for command in (enqueue, dlq, job, trip, stats, pace, metrics, notify):
    main.add_command(command)
main.add_command(sandbox_command, name="sandbox")
main.add_command(demo_command, name="demo")
main.add_command(serve_command, name="serve")
main.add_command(token_group, name="token")
main.add_command(console_group, name="console")
