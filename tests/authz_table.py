"""Who may call what: the expectation for every route of the app, read by tests/test_authorization.py.

Keyed by (METHOD, rule) exactly as in `app.url_map`. A route missing here is still tested when its view
carries `kiln_permission` (set by `permission_required` for API views, or `page_permission` for pages,
both in app/http/auth.py): the expectation is then derived from that declaration. A route in neither place fails
the test with its name, so a new route cannot slip in without a decision about who may call it.
Routes listed here with Perm/Page must ALSO declare the same permission on the view (checked), so a
weakened decorator fails the test instead of silently moving the expectation with it.

Kinds:
  Public()              anyone, logged in or not (it may still answer 401 for bad credentials)
  Login()               API: any authenticated caller, person or API key
  User()                API: a person (session/JWT), never an API key
  Perm(p, org_arg=None) API: role/scope check for permission p, tenant from X-Tenant-ID (or the URL arg)
  SiteAdmin()           API: a site administrator only (users.is_site_admin)
  Page(p=None)          HTML page: a logged-in person; with p, their role in the session org must allow p
  SiteAdmin(page)       operations: a site administrator only (nobody in the matrix's world is one: every
                        caller is refused; tests/ops checks that site administrators get in)
  Skip(reason)          not exercised here (say where it is covered instead)
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Public:
    kind: str = "public"


@dataclass(frozen=True)
class Login:
    kind: str = "login"


@dataclass(frozen=True)
class User:
    kind: str = "user"


@dataclass(frozen=True)
class Perm:
    permission: str
    org_arg: str | None = None
    kind: str = "perm"


@dataclass(frozen=True)
class SiteAdmin:
    """API: site administrators only, whatever their role in an org; every caller of the matrix is refused
    (none of them is a site admin: tests/billing covers the admin)."""
    kind: str = "siteadmin"


@dataclass(frozen=True)
class Page:
    permission: str | None = None
    kind: str = "page"


@dataclass(frozen=True)
class SiteAdmin:
    page: bool = False  # an HTML page (log-in redirect for anonymous) rather than a machine endpoint
    kind: str = "site_admin"


# Routes answered only to a WebSocket upgrade: the matrix sends the handshake headers. Authorization runs
# before the upgrade, so an allowed caller gets the lookup's 404 and a refused one 401/403.
WEBSOCKET_ROUTES = {"/api/builds/<build_id>/logs/stream"}


# Optional integrations answer 503 NOT_CONFIGURED without their settings, which the matrix (rightly) counts as a
# server error. Their routes are exercised configured instead: authorization and input checks answer before any
# call leaves the app, so settings suffice. The API base is a closed loopback port: a route that did reach out
# would fail with a 5xx here rather than pass unnoticed. tests/billing/test_stripe.py covers the calls themselves
# (and the 503s without settings).
_STRIPE = {"STRIPE_SECRET_KEY": "sk_test_authz", "STRIPE_WEBHOOK_SECRET": "whsec_authz",
           "KILN_STRIPE_API_BASE": "http://127.0.0.1:9", "KILN_STRIPE_PRICES": {"pro": "price_authz_pro"}}
SETTINGS: dict[tuple[str, str], dict] = {
    ("POST", "/api/billing/checkout"): _STRIPE,
    ("POST", "/api/billing/portal"): _STRIPE,
    ("POST", "/api/billing/webhook"): _STRIPE,
}


TABLE: dict[tuple[str, str], object] = {
    # Public: health, docs, static, sign-up/log-in/reset flows, the invitation link itself.
    ("GET", "/static/<path:filename>"): Public(),
    ("GET", "/api/health"): Public(),
    ("GET", "/api/ready"): Public(),
    ("GET", "/api/version"): Public(),
    # Prometheus reads /metrics with KILN_METRICS_TOKEN; otherwise a site administrator's login (tests/ops).
    ("GET", "/metrics"): SiteAdmin(page=False),
    ("GET", "/api/openapi.json"): Public(),
    ("GET", "/api/docs"): Public(),
    ("GET", "/api/docs/"): Public(),
    ("POST", "/api/auth/register"): Public(),
    ("POST", "/api/auth/token"): Public(),
    ("POST", "/api/auth/login"): Public(),
    ("POST", "/api/auth/forgot-password"): Public(),
    ("POST", "/api/auth/reset-password"): Public(),
    ("GET", "/"): Public(),  # redirects to log-in or the dashboard
    ("GET", "/login"): Public(),
    ("POST", "/login"): Public(),
    ("GET", "/signup"): Public(),
    ("POST", "/signup"): Public(),
    ("POST", "/logout"): Public(),
    ("GET", "/forgot-password"): Public(),
    ("POST", "/forgot-password"): Public(),
    ("GET", "/reset-password/<token>"): Public(),
    ("POST", "/reset-password/<token>"): Public(),
    ("GET", "/invites/<token>"): Public(),
    ("POST", "/invites/<token>"): Public(),

    # Account API: a person, not a key (POST /auth/logout revokes the JWT itself: keys get 401 there).
    ("POST", "/api/auth/logout"): User(),
    ("GET", "/api/auth/me"): User(),
    ("POST", "/api/auth/totp/setup"): User(),
    ("POST", "/api/auth/totp/enable"): User(),
    ("POST", "/api/auth/totp/disable"): User(),
    ("GET", "/api/organizations"): Login(),
    ("POST", "/api/organizations"): User(),
    ("POST", "/api/organizations/invites/<token>/accept"): User(),

    # Pages of a logged-in person.
    ("GET", "/account"): Page(),
    ("POST", "/account"): Page(),
    ("POST", "/account/totp"): Page(),
    ("POST", "/orgs/switch"): Page(),
    # Notifications belong to a person: their own inbox, bell and e-mail preferences (tests/events).
    ("GET", "/api/notifications"): User(),
    ("GET", "/api/notifications/unread-count"): User(),
    ("PATCH", "/api/notifications/read-all"): User(),
    ("GET", "/api/notifications/preferences"): User(),
    ("PATCH", "/api/notifications/preferences"): User(),
    ("PATCH", "/api/notifications/<notification_id>"): User(),
    ("GET", "/notifications"): Page(),
    ("GET", "/notifications/bell"): Page(),
    ("POST", "/notifications/read-all"): Page(),
    ("POST", "/notifications/<notification_id>/open"): Page(),
    ("GET", "/notifications/preferences"): Page(),
    ("POST", "/notifications/preferences"): Page(),
    ("GET", "/dashboard"): Page("org:read"),
    ("POST", "/organizations/new"): Page(),

    # Chat pages (conversation_pages): access to the conversation itself is checked by access.py.
    ("GET", "/chat"): Page("conversations:read"),
    ("POST", "/chat"): Page("conversations:write"),
    ("POST", "/chat/new"): Page("conversations:write"),
    ("GET", "/chat/<conversation_id>"): Page("conversations:read"),
    ("POST", "/chat/<conversation_id>/messages"): Page("conversations:write"),
    ("GET", "/chat/<conversation_id>/thread"): Page("conversations:read"),
    ("GET", "/chat/<conversation_id>/recipe"): Page("conversations:read"),
    ("POST", "/chat/<conversation_id>/recipe"): Page("conversations:write"),
    ("GET", "/chat/<conversation_id>/versions"): Page("conversations:read"),
    ("GET", "/chat/<conversation_id>/versions/<int:number>/diff"): Page("conversations:read"),
    ("POST", "/chat/<conversation_id>/rename"): Page("conversations:write"),
    ("POST", "/chat/<conversation_id>/delete"): Page("conversations:write"),
    ("GET", "/api/chat/stream"): Perm("conversations:write"),

    # Build pages (build_pages).
    ("GET", "/builds"): Page("builds:read"),
    ("GET", "/builds/<build_id>"): Page("builds:read"),
    ("POST", "/builds/<build_id>/cancel"): Page("builds:write"),
    ("POST", "/builds/<build_id>/start"): Page("builds:write"),
    ("POST", "/builds/<build_id>/retry"): Page("builds:write"),
    ("GET", "/api/streams/builds/<build_id>"): Perm("builds:read"),
    ("GET", "/api/builds/<build_id>/logs/stream"): Perm("builds:read"),

    # Organizations, members, invitations (org from the URL).
    ("DELETE", "/api/organizations/<org_id>"): Perm("org:delete", "org_id"),
    ("GET", "/api/organizations/<org_id>"): Perm("org:read", "org_id"),
    ("PATCH", "/api/organizations/<org_id>"): Perm("org:manage", "org_id"),
    ("GET", "/api/organizations/<org_id>/invites"): Perm("members:manage", "org_id"),
    ("POST", "/api/organizations/<org_id>/invites"): Perm("members:manage", "org_id"),
    ("DELETE", "/api/organizations/<org_id>/invites/<invite_id>"): Perm("members:manage", "org_id"),
    ("GET", "/api/organizations/<org_id>/members"): Perm("members:read", "org_id"),
    ("POST", "/api/organizations/<org_id>/members"): Perm("members:manage", "org_id"),
    ("DELETE", "/api/organizations/<org_id>/members/<user_id>"): Perm("members:read", "org_id"),
    ("PATCH", "/api/organizations/<org_id>/members/<user_id>"): Perm("members:manage", "org_id"),

    # API keys: admins, or keys with the admin scope, of that org only.
    ("GET", "/api/organizations/<org_id>/api-keys"): Perm("keys:manage", "org_id"),
    ("POST", "/api/organizations/<org_id>/api-keys"): Perm("keys:manage", "org_id"),
    ("DELETE", "/api/organizations/<org_id>/api-keys/<key_id>"): Perm("keys:manage", "org_id"),
    ("GET", "/api/organizations/<org_id>/api-keys/<key_id>"): Perm("keys:manage", "org_id"),
    ("PATCH", "/api/organizations/<org_id>/api-keys/<key_id>"): Perm("keys:manage", "org_id"),
    ("POST", "/api/organizations/<org_id>/api-keys/<key_id>/revoke"): Perm("keys:manage", "org_id"),
    ("POST", "/api/organizations/<org_id>/api-keys/<key_id>/roll"): Perm("keys:manage", "org_id"),
    ("POST", "/api/organizations/<org_id>/api-keys/<key_id>/rotate"): Perm("keys:manage", "org_id"),
    ("GET", "/api/organizations/<org_id>/api-keys/<key_id>/usage"): Perm("keys:manage", "org_id"),

    # Structure.
    ("DELETE", "/api/groups/<ident>"): Perm("structure:manage"),
    ("GET", "/api/groups/<ident>"): Perm("org:read"),
    ("PATCH", "/api/groups/<ident>"): Perm("structure:manage"),
    ("GET", "/api/groups/<ident>/members"): Perm("members:read"),
    ("POST", "/api/groups/<ident>/members"): Perm("structure:manage"),
    ("DELETE", "/api/groups/<ident>/members/<user_id>"): Perm("structure:manage"),
    ("GET", "/api/organizations/<org_id>/groups"): Perm("org:read", "org_id"),
    ("POST", "/api/organizations/<org_id>/groups"): Perm("structure:manage", "org_id"),
    ("GET", "/api/organizations/<org_id>/units"): Perm("org:read", "org_id"),
    ("POST", "/api/organizations/<org_id>/units"): Perm("structure:manage", "org_id"),
    ("DELETE", "/api/teams/<ident>"): Perm("structure:manage"),
    ("GET", "/api/teams/<ident>"): Perm("org:read"),
    ("PATCH", "/api/teams/<ident>"): Perm("structure:manage"),
    ("GET", "/api/teams/<ident>/members"): Perm("members:read"),
    ("POST", "/api/teams/<ident>/members"): Perm("structure:manage"),
    ("DELETE", "/api/teams/<ident>/members/<user_id>"): Perm("structure:manage"),
    ("DELETE", "/api/units/<ident>"): Perm("structure:manage"),
    ("GET", "/api/units/<ident>"): Perm("org:read"),
    ("PATCH", "/api/units/<ident>"): Perm("structure:manage"),
    ("GET", "/api/units/<ident>/members"): Perm("members:read"),
    ("POST", "/api/units/<ident>/members"): Perm("structure:manage"),
    ("DELETE", "/api/units/<ident>/members/<user_id>"): Perm("structure:manage"),
    ("GET", "/api/units/<ident>/teams"): Perm("org:read"),
    ("POST", "/api/units/<ident>/teams"): Perm("structure:manage"),

    # Conversation shares.
    ("GET", "/api/conversations/<conversation_id>/shares"): Perm("conversations:read"),
    ("POST", "/api/conversations/<conversation_id>/shares"): Perm("conversations:write"),
    ("DELETE", "/api/conversations/<conversation_id>/shares/<share_id>"): Perm("conversations:write"),

    # Conversations and chat API.
    ("POST", "/api/chat"): Perm("conversations:write"),
    ("GET", "/api/conversations"): Perm("conversations:read"),
    ("POST", "/api/conversations"): Perm("conversations:write"),
    ("DELETE", "/api/conversations/<conversation_id>"): Perm("conversations:write"),
    ("GET", "/api/conversations/<conversation_id>"): Perm("conversations:read"),
    ("PATCH", "/api/conversations/<conversation_id>"): Perm("conversations:write"),
    ("GET", "/api/conversations/<conversation_id>/recipe"): Perm("conversations:read"),
    ("PUT", "/api/conversations/<conversation_id>/recipe"): Perm("conversations:write"),
    ("GET", "/api/conversations/<conversation_id>/recipe/diff"): Perm("conversations:read"),
    ("GET", "/api/conversations/<conversation_id>/recipe/versions"): Perm("conversations:read"),
    ("GET", "/api/conversations/<conversation_id>/recipe/versions/<int:number>"): Perm("conversations:read"),

    # Builds API.
    ("GET", "/api/builds"): Perm("builds:read"),
    ("POST", "/api/builds"): Perm("builds:write"),
    ("DELETE", "/api/builds/<build_id>"): Perm("builds:write"),
    ("GET", "/api/builds/<build_id>"): Perm("builds:read"),
    ("GET", "/api/builds/<build_id>/artifacts"): Perm("builds:read"),
    ("GET", "/api/builds/<build_id>/artifacts/<artifact_id>/download"): Perm("builds:read"),
    ("POST", "/api/builds/<build_id>/cancel"): Perm("builds:write"),
    ("GET", "/api/builds/<build_id>/download"): Perm("builds:read"),
    ("GET", "/api/builds/<build_id>/logs"): Perm("builds:read"),
    ("POST", "/api/builds/<build_id>/retry"): Perm("builds:write"),
    ("POST", "/api/builds/<build_id>/start"): Perm("builds:write"),
    ("GET", "/api/builds/<build_id>/status"): Perm("builds:read"),
    ("GET", "/api/builds/<build_id>/tests"): Perm("builds:read"),
    ("POST", "/api/builds/<build_id>/tests"): Perm("builds:write"),

    # Organization pages (org_pages).
    ("GET", "/api-keys"): Page("keys:manage"),
    ("POST", "/api-keys"): Page("keys:manage"),
    ("POST", "/api-keys/<key_id>/<action>"): Page("keys:manage"),
    ("GET", "/api-keys/<key_id>/usage"): Page("keys:manage"),
    ("GET", "/conversations/<conversation_id>/share"): Page("conversations:read"),
    ("POST", "/conversations/<conversation_id>/share"): Page("conversations:write"),
    ("GET", "/organization"): Page("org:read"),
    ("POST", "/organization/delete"): Page("org:delete"),
    ("POST", "/organization/invites"): Page("members:manage"),
    ("POST", "/organization/invites/<invite_id>/revoke"): Page("members:manage"),
    ("POST", "/organization/members"): Page("members:manage"),
    ("POST", "/organization/members/<user_id>/remove"): Page("members:read"),
    ("POST", "/organization/members/<user_id>/role"): Page("members:manage"),
    ("POST", "/organization/rename"): Page("org:manage"),
    ("GET", "/organization/structure"): Page("org:read"),
    ("POST", "/organization/structure"): Page("structure:manage"),

    # Billing (tests/billing): what plans allow is public; Stripe's signed callback carries no login.
    ("GET", "/api/billing/tiers"): Public(),
    ("POST", "/api/billing/webhook"): Public(),
    ("PATCH", "/api/billing/tiers/<name>"): SiteAdmin(),
}

# JSON bodies (or query strings) where the one generated from the route's schema would not validate:
# refusals must come from authorization, not from a 400 on the body.
BODIES: dict[tuple[str, str], dict] = {
    ("PATCH", "/api/notifications/<notification_id>"): {"json": {"read": True}},
    ("PATCH", "/api/notifications/preferences"): {"json": {"email": {"build.failed": True}}},
    ("GET", "/api/chat/stream"): {"query": {"message": "hello"}},
    ("PUT", "/api/conversations/<conversation_id>/recipe"): {"json": {"yaml": "name: demo\n"}},
}
