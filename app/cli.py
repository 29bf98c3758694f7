"""`flask kiln ...`: the engine's own CLI (build, validate, test), run with the app's data directory, plus the
site operations (admin, backup, restore, doctor) that need the app."""
from __future__ import annotations

import os

import click
from flask.cli import with_appcontext


def register_cli(app) -> None:
    # The engine reads its settings from the environment; give it the app's data dir so the CLI
    # and the workers share one cache.
    os.environ.setdefault("KILN_DATA_DIR", app.config["KILN_DATA_DIR"])
    from app.engine.cli import kiln

    for command in (admin, backup, restore, backup_key, doctor):
        if command.name not in kiln.commands:
            kiln.add_command(command)
    app.cli.add_command(kiln)


@click.group(help="Site administrators: they see the operations pages, /metrics and backups.")
def admin():
    pass


def _change_admin(email: str, grant: bool) -> None:
    from app.extensions import db
    from app.services.errors import DomainError
    from app.services.ops import admins

    try:
        user = (admins.grant_site_admin if grant else admins.revoke_site_admin)(admins.Actor.system(), email)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    click.echo(f"{user.email} is {'now' if user.is_site_admin else 'no longer'} a site administrator")


@admin.command("grant")
@click.argument("email")
@with_appcontext
def admin_grant(email):
    """Make the account with EMAIL a site administrator."""
    _change_admin(email, True)


@admin.command("revoke")
@click.argument("email")
@with_appcontext
def admin_revoke(email):
    """Take site administration from the account with EMAIL (never the last one)."""
    _change_admin(email, False)


@admin.command("list")
@with_appcontext
def admin_list():
    """Print the site administrators."""
    from app.services.ops import admins

    for user in admins.site_admins():
        click.echo(user.email)


@click.command("backup")
@with_appcontext
def backup():
    """Write a backup archive (encrypted database dump + artifact manifest) to KILN_BACKUP_DIR."""
    from app.extensions import db
    from app.services.audit import Actor
    from app.services.errors import DomainError
    from app.services.ops import backups

    try:
        written = backups.create_backup(Actor.system())
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    click.echo(str(backups.backup_dir() / written.filename))


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def restore(archive):
    """Restore ARCHIVE into the configured database, which must be empty."""
    from pathlib import Path

    from app.services.errors import DomainError
    from app.services.ops import backups

    try:
        manifest = backups.restore_backup(Path(archive))
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Restored the {manifest['database']['engine']} database of {manifest['createdAt']} "
               f"({len(manifest['artifacts'])} artifacts listed; they stay in their store)")


@click.command("backup-key")
def backup_key():
    """Print a new key for KILN_BACKUP_KEY (keep it apart from the backups: without it they cannot be read)."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@click.command("doctor")
@with_appcontext
def doctor():
    """Check this host: tools, loop devices, KVM, disk, database, Redis, artifact store. Exit 1 on a failure."""
    from flask import current_app

    from app.services.ops.doctor import run_checks

    checks = run_checks(current_app.config)
    marks = {"ok": ("ok  ", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "red")}
    for check in checks:
        mark, color = marks[check.status]
        click.secho(f"[{mark}] {check.name}: {check.detail}", fg=None if check.status == "ok" else color)
        if check.fix and check.status != "ok":
            click.echo(f"       fix: {check.fix}")
    failed = [c for c in checks if c.status == "fail"]
    warned = [c for c in checks if c.status == "warn"]
    click.echo(f"{len(checks) - len(failed) - len(warned)} ok, {len(warned)} warnings, {len(failed)} failures")
    if failed:
        raise SystemExit(1)
