"""`dalleq serve` and `dalleq db`: the queue server and its database, and the settings flags
they share with `dalleq up` (STYLE 19: defaults, then DALLEQ_* env, then flags)."""

import click

from server import defaults
from server.errors import ConfigError

from .logs import configure_logging


def database_url(value: str | None) -> str | None:
    """--db takes a SQLAlchemy URL or a plain path to a SQLite file."""
    if value is None or "://" in value:
        return value
    return f"sqlite:///{value}"


def settings_options(command):
    """The server settings as flags, each with its DALLEQ_* variable."""
    options = [
        click.option("--db", "db", envvar="DALLEQ_DATABASE_URL", show_envvar=True, metavar="URL|PATH",
                     default=defaults.DATABASE_URL, show_default=True,
                     help="SQLAlchemy URL or SQLite file."),
        click.option("--data", "data", envvar="DALLEQ_DATA_DIR", show_envvar=True, metavar="DIR",
                     default=defaults.DATA_DIR, show_default=True,
                     help="Folder for images and thumbnails."),
        click.option("--worker-token", envvar="DALLEQ_WORKER_TOKEN", show_envvar=True,
                     help="Token workers must present; worker endpoints are off while unset."),
        click.option("--password", envvar="DALLEQ_PASSWORD", show_envvar=True,
                     help="Optional password for the pages and the people's API."),
        click.option("--lease-seconds", type=int, envvar="DALLEQ_LEASE_SECONDS", show_envvar=True,
                     default=defaults.LEASE_SECONDS, show_default=True,
                     help="Lease length; heartbeats extend it."),
        click.option("--max-attempts", type=int, envvar="DALLEQ_MAX_ATTEMPTS", show_envvar=True,
                     default=defaults.MAX_ATTEMPTS, show_default=True,
                     help="Attempts before a job fails."),
        click.option("--max-upload-mb", type=int, envvar="DALLEQ_MAX_UPLOAD_MB", show_envvar=True,
                     default=defaults.MAX_UPLOAD_MB, show_default=True,
                     help="Cap on one result upload."),
        click.option("--public-url", envvar="DALLEQ_PUBLIC_URL", show_envvar=True, metavar="URL",
                     help="The address people open (https://box.tailnet.ts.net behind tailscale "
                          "serve): its host is allowed, and https makes cookies Secure and sends "
                          "HSTS."),
        click.option("--push-contact", envvar="DALLEQ_PUSH_CONTACT", show_envvar=True,
                     metavar="URL",
                     help="Your mailto: address or https URL, sent to push services with each "
                          "notification (default: the https public URL, else "
                          f"{defaults.PUSH_CONTACT})."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def listen_options(command):
    """--host, --port and --threads: where `serve` and `up` listen."""
    options = [
        click.option("--host", default=defaults.HOST, envvar="DALLEQ_HOST", show_envvar=True,
                     show_default=True,
                     help="Address to bind; use 0.0.0.0 or a tailnet address to reach it from a "
                          "phone."),
        click.option("--port", default=defaults.PORT, type=int, envvar="DALLEQ_PORT",
                     show_envvar=True, show_default=True,
                     help="Port to listen on; 0 picks a free one."),
        click.option("--threads", default=defaults.THREADS, type=int, envvar="DALLEQ_THREADS",
                     show_envvar=True, show_default=True,
                     help="WSGI threads. Waiting workers' long polls may hold all but a quarter "
                          "of them (at least 4 stay free for people)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_settings(db, data, worker_token, password, lease_seconds, max_attempts, max_upload_mb,
                   public_url, push_contact):
    """The server's Settings from the flags; a setting out of range is a usage error."""
    from server.config import load_settings

    try:
        return load_settings(
            database_url=database_url(db),
            data_dir=data,
            worker_token=worker_token,
            password=password,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            max_upload_mb=max_upload_mb,
            public_url=public_url,
            push_contact=push_contact,
        )
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


@click.command()
@listen_options
@settings_options
def serve(host, port, threads, **settings_flags):
    """Run the queue server under a production WSGI server (waitress)."""
    from server.serving import run_server

    configure_logging()
    run_server(build_settings(**settings_flags), host=host, port=port, threads=threads)


@click.group()
def db():
    """Database maintenance."""


@db.command("upgrade")
@settings_options
def db_upgrade(**settings_flags):
    """Migrate the database to the current schema, keeping every job."""
    from server import db as database

    settings = build_settings(**settings_flags)
    engine = database.make_engine(settings.database_url)
    database.upgrade(engine)
    click.echo(f"{settings.database_url} is at revision {database.current_revision(engine)}")


@db.command("example")
@click.argument("path", type=click.Path(dir_okay=False), default="queue.db.example")
def db_example(path):
    """Write PATH (default queue.db.example): the current schema with a few example jobs."""
    from server.example_db import write_example

    write_example(path)
    click.echo(f"wrote {path}")
