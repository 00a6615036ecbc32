"""Commands to departments: the mayor's office (or an official) sends an instruction with a due
time, about an event, a project, a figure or a district; the department's staff acknowledge it,
report progress and close it (or return it, in writing); every step is a timestamped, audited
history entry, and overdue commands stand out on the mayor's screen.

``workflow`` is the lifecycle table; ``rules`` who may do what and when a command is overdue;
``departments`` the organisation chart; ``service`` the only code that touches the database
(``paging`` its listing tokens); ``api`` and ``pages`` are the HTTP shells; ``demo`` creates the
demo accounts (the mayor and one clerk per department) that show the flow.
"""

from citydesk.status.commands.api import router
from citydesk.status.commands.demo import DemoAccount, demo_accounts
from citydesk.status.commands.departments import Department
from citydesk.status.commands.pages import pages_router
from citydesk.status.commands.rules import is_overdue
from citydesk.status.commands.schemas import CommandIn, ProgressIn, StatusIn
from citydesk.status.commands.service import act, detail, listing, send, summary
from citydesk.status.commands.workflow import COMMAND_LIFECYCLE, OPEN_STATUSES, PROGRESS

__all__ = [
    "COMMAND_LIFECYCLE",
    "OPEN_STATUSES",
    "PROGRESS",
    "CommandIn",
    "DemoAccount",
    "Department",
    "ProgressIn",
    "StatusIn",
    "act",
    "demo_accounts",
    "detail",
    "is_overdue",
    "listing",
    "pages_router",
    "router",
    "send",
    "summary",
]
