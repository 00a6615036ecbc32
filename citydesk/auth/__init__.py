"""Authentication and authorisation: who is asking, what they may see, what they may do.

Staff sign in with a password (web pages: a session cookie; API clients: HTTP Basic, cached) or an
API token; everyone else is ``ANONYMOUS`` and sees public data only. What each role may see and do
is stated once, in ``ROLE_LEVELS`` and ``ROLE_PERMISSIONS``. Reads of restricted (personal) data
are written to the audit log with ``audit``. Other sub-packages import auth only through here.
"""

from citydesk.auth.api import router
from citydesk.auth.deps import (
    SESSION_COOKIE,
    CurrentPrincipal,
    StaffPrincipal,
    plainly_anonymous,
    principal,
    refuse_writes_on_public_instance,
    require_staff,
    requires,
)
from citydesk.auth.disclosure import (
    ROLE_ALIASES,
    ROLE_LEVELS,
    ROLE_PERMISSIONS,
    STAFF_ROLES,
    Disclosure,
    Permission,
    Role,
    parse_role,
)
from citydesk.auth.pages import router as pages_router
from citydesk.auth.principal import ANONYMOUS, CredentialCache, Principal
from citydesk.auth.service import (
    TokenInfo,
    User,
    audit,
    authenticate_basic,
    authenticate_password,
    authenticate_token,
    create_session,
    create_token,
    create_user,
    deactivate_user,
    end_session,
    issue_token,
    list_tokens,
    list_users,
    revoke_token,
    session_principal,
    set_password,
)

__all__ = [
    "ANONYMOUS",
    "ROLE_ALIASES",
    "ROLE_LEVELS",
    "ROLE_PERMISSIONS",
    "SESSION_COOKIE",
    "STAFF_ROLES",
    "CredentialCache",
    "CurrentPrincipal",
    "Disclosure",
    "Permission",
    "Principal",
    "Role",
    "StaffPrincipal",
    "TokenInfo",
    "User",
    "audit",
    "authenticate_basic",
    "authenticate_password",
    "authenticate_token",
    "create_session",
    "create_token",
    "create_user",
    "deactivate_user",
    "end_session",
    "issue_token",
    "list_tokens",
    "list_users",
    "pages_router",
    "parse_role",
    "plainly_anonymous",
    "principal",
    "refuse_writes_on_public_instance",
    "require_staff",
    "requires",
    "revoke_token",
    "router",
    "session_principal",
    "set_password",
]
