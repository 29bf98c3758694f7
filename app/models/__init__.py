"""Every model, imported once so Alembic and create_all() see the whole schema."""
from app.models.accounts import ROLE_RANK, ROLES, Membership, Organization, User  # noqa: F401
from app.models.apikeys import ApiKey, ApiKeyUsage  # noqa: F401
from app.models.audit import AuditRecord, OutboxEvent  # noqa: F401
from app.models.conversations import Conversation, Message, RecipeVersion  # noqa: F401
from app.models.orgs import (ConversationShare, Group, GroupMember, Invitation, Team, TeamMember, Unit,  # noqa: F401
                             UnitMember)
from app.models.builds import Build, BuildArtifact, BuildStage, TestCase, TestRun  # noqa: F401
from app.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint  # noqa: F401
from app.models.notifications import Notification, NotificationPreference  # noqa: F401
from app.models.billing import (LIMIT_COLUMNS, TOKEN_KINDS, BillingAccount, DeletedBuildUsage,  # noqa: F401
                                StripeEvent, Tier, TokenTransaction)
