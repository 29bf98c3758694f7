"""Outgoing mail: SMTP when configured, otherwise the log and instance/outbox/ so a self-hoster still gets it."""
from __future__ import annotations

import logging
import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

log = logging.getLogger("kiln.mail")


def send_mail(config: dict, to: str, subject: str, body: str) -> Path | None:
    msg = EmailMessage()
    msg["From"] = config["MAIL_FROM"]
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@kiln>"
    msg.set_content(body)
    if config.get("MAIL_SERVER"):
        _send_smtp(config, msg)
        return None
    outbox = Path(config["KILN_OUTBOX_DIR"])
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
    path.write_bytes(bytes(msg))
    log.warning("MAIL_SERVER is not set; mail to %s written to %s:\n%s", to, path, body)
    return path


def _send_smtp(config: dict, msg: EmailMessage) -> None:
    host, port = config["MAIL_SERVER"], config["MAIL_PORT"]
    if config.get("MAIL_USE_SSL"):
        server = smtplib.SMTP_SSL(host, port, context=ssl.create_default_context(), timeout=20)
    else:
        server = smtplib.SMTP(host, port, timeout=20)
    with server:
        if config.get("MAIL_USE_TLS") and not config.get("MAIL_USE_SSL"):
            server.starttls(context=ssl.create_default_context())
        if config.get("MAIL_USERNAME"):
            server.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        server.send_message(msg)
