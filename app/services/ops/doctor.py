"""`flask kiln doctor`: is this host ready to run Kiln (web or worker)? Each check says what to fix.

A failure stops Kiln from working here (exit code 1); a warning makes it slower or partial (TCG instead of
KVM, little disk).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, text

from app.extensions import db

# (what runs it, the Debian package that ships it)
TOOLS = [
    ("mmdebstrap", "mmdebstrap"),
    ("mksquashfs", "squashfs-tools"),
    ("xorriso", "xorriso"),
    ("grub-mkrescue", "grub-common"),
    ("grub-mkimage", "grub-common"),
    ("bwrap", "bubblewrap"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("qemu-img", "qemu-utils"),
    ("mkfs.ext4", "e2fsprogs"),
    ("zstd", "zstd"),
]
MIN_FREE_GB = 5  # below this one image build does not fit
WARN_FREE_GB = 20


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


def _tools() -> list[Check]:
    found = []
    for command, package in TOOLS:
        path = shutil.which(command)
        found.append(Check(f"tool {command}", "ok", path) if path else
                     Check(f"tool {command}", "fail", "not found on PATH",
                           f"apt-get install {package} (or run scripts/setup.sh)"))
    return found


def _loop_devices() -> Check:
    control = Path("/dev/loop-control")
    if not control.exists():
        return Check("loop devices", "fail", "/dev/loop-control is missing",
                     "load the loop module (modprobe loop); in a container, pass the host's /dev/loop* devices")
    if not os.access(control, os.R_OK | os.W_OK):
        return Check("loop devices", "fail", "/dev/loop-control is not writable by this user",
                     "run the worker as root (or a user in the disk group)")
    return Check("loop devices", "ok", "/dev/loop-control is usable")


def _kvm() -> Check:
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Check("kvm", "ok", "/dev/kvm is usable: test VMs run hardware-accelerated")
    why = "missing" if not os.path.exists("/dev/kvm") else "not writable by this user"
    return Check("kvm", "warn", f"/dev/kvm is {why}: test VMs fall back to TCG, several times slower",
                 "enable virtualization in the BIOS or VM host, and add the worker's user to the kvm group")


def _disk(config) -> Check:
    data_dir = Path(config["KILN_DATA_DIR"])
    free_gb = shutil.disk_usage(data_dir).free / 1024**3
    detail = f"{free_gb:.1f} GB free in {data_dir}"
    if free_gb < MIN_FREE_GB:
        return Check("disk", "fail", detail, f"free space or point KILN_DATA_DIR at a disk with {WARN_FREE_GB}+ GB")
    if free_gb < WARN_FREE_GB:
        return Check("disk", "warn", detail, f"the engine's caches and builds want {WARN_FREE_GB}+ GB")
    return Check("disk", "ok", detail)


def _database(config) -> Check:
    url = db.engine.url.render_as_string(hide_password=True)
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        tables = set(inspect(db.engine).get_table_names())
    except Exception as exc:  # noqa: BLE001 - any driver error is the finding itself
        return Check("database", "fail", f"{url}: {str(exc).splitlines()[0][:200]}",
                     "check DATABASE_URL and that the database server is running")
    if "users" not in tables:
        return Check("database", "fail", f"{url}: connected, but the schema is missing", "run `flask db upgrade`")
    return Check("database", "ok", f"{url}: connected")


def _redis(config) -> Check:
    from redis import Redis

    try:
        Redis.from_url(config["REDIS_URL"], socket_connect_timeout=3, socket_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        return Check("redis", "fail", f"{config['REDIS_URL']}: {exc}", "check REDIS_URL and that redis-server runs")
    return Check("redis", "ok", f"{config['REDIS_URL']}: answers")


def _artifact_store(config) -> Check:
    url = config.get("KILN_STORAGE_URL") or ""
    if url.startswith("s3://"):
        try:
            import boto3
        except ImportError:
            return Check("artifact store", "fail", f"{url}: boto3 is not installed", "pip install boto3")
        bucket = url[5:].split("/", 1)[0]
        try:
            boto3.client("s3", endpoint_url=config.get("KILN_S3_ENDPOINT_URL") or None).head_bucket(Bucket=bucket)
        except Exception as exc:  # noqa: BLE001
            return Check("artifact store", "fail", f"{url}: {exc}",
                         "check the bucket, KILN_S3_ENDPOINT_URL and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        return Check("artifact store", "ok", f"{url}: bucket reachable")
    root = Path(config["KILN_ARTIFACTS_DIR"])
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("artifact store", "fail", f"{root}: {exc}", "make KILN_ARTIFACTS_DIR writable by Kiln")
    return Check("artifact store", "ok", f"{root}: writable (local disk)")


def _pg_dump(config) -> list[Check]:
    if not config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return []
    if shutil.which("pg_dump") and shutil.which("pg_restore"):
        return [Check("tool pg_dump", "ok", shutil.which("pg_dump"))]
    return [Check("tool pg_dump", "fail", "pg_dump/pg_restore not found: backups cannot run",
                  "apt-get install postgresql-client")]


def run_checks(config) -> list[Check]:
    return [*_tools(), _loop_devices(), _kvm(), _disk(config), _database(config), _redis(config),
            _artifact_store(config), *_pg_dump(config)]
