"""`dalleq`: the one command (STYLE 28). Every option has a DALLEQ_* twin; --help is the reference.

Each group of commands lives in a module of its own; this one only gathers them. `weights`,
`generate`, `worker` and `up` import JAX only when they run, so `serve` and `--help` work without
the model stack.
"""

import click

from .model_commands import generate, weights
from .server_commands import db, serve
from .up import up
from .worker_command import worker

HELP_WIDTH = 100


@click.group(context_settings={"max_content_width": HELP_WIDTH})
@click.version_option(package_name="dalle-queue")
def main():
    """dalle-queue: a phone-first prompt queue for a home GPU."""


for command in (serve, db, up, weights, generate, worker):
    main.add_command(command)


if __name__ == "__main__":
    main()
