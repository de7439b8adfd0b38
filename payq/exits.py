"""What every ``payq`` command shares (the CLI's, ``payq serve``'s and ``payq demo``'s): exit codes, error reporting, settings."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from config.settings import InvalidSettings, Settings, load_settings
from payapi.errors import ConfigurationError, InvalidRequest, NotReplicated, PayqError, PermanentError, RedisFull
from tasks.stores import Stores

EXIT_FAULT = 1
EXIT_INVALID = 2
EXIT_CONFIG = os.EX_CONFIG  # 78: the configuration is wrong; running the command again as it is cannot help
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: written, but not yet on enough replicas, or Redis is full; send it again


@contextmanager
def exits_cleanly() -> Iterator[None]:
    """Turn payq's errors into the documented exit codes and readable lines on stderr.

    2: invalid input, each problem on its own line naming the field and rule.
    78: invalid configuration, each problem naming its ``PAYQ_*`` variable.
    1: a system fault (Redis unreachable …), one line naming the cause.
    75: too few Redis replicas confirmed a write in time (``PAYQ_REDIS_MIN_REPLICAS``), or Redis is full
    (``maxmemory``, nothing written): send it again.
    """
    try:
        yield
    except InvalidRequest as exc:
        for problem in exc.problems:
            click.echo(f"invalid: {problem}", err=True)
        sys.exit(EXIT_INVALID)
    except InvalidSettings as exc:
        for line in exc.problems:
            click.echo(f"invalid configuration: {line}", err=True)
        sys.exit(EXIT_CONFIG)
    except ConfigurationError as exc:
        click.echo(f"invalid configuration: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except PermanentError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    except NotReplicated as exc:
        click.echo(f"error: {exc}; it may still run: send it again (the same job, never twice)", err=True)
        sys.exit(EXIT_TEMPFAIL)
    except RedisFull as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_TEMPFAIL)
    except PayqError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAULT)


def settings_from_env() -> Settings:
    """The settings from ``PAYQ_*`` and ``.env``; a bad value exits 78 naming its variable."""
    with exits_cleanly():
        return load_settings()
    raise AssertionError("unreachable")  # exits_cleanly exits on every error


def stores_from_env() -> Stores:
    """The stores an operator command reads and changes."""
    return Stores.build(settings_from_env())
