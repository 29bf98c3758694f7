"""Organization pages, one module per area: settings (members, invitations), structure, API keys, the
invitation link, and the share dialog. They share one blueprint (base.py), so endpoints stay `org_pages.*`."""
from __future__ import annotations

from . import apikeys, invites, settings, shares, structure  # noqa: F401 - each module registers its views
from .base import bp

page_blueprints = [bp]
