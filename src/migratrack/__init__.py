"""migratrack: track long, multi-phase migrations."""

from migratrack.core.eta import Estimate
from migratrack.core.models import Alert, Event, Phase, SubTask
from migratrack.core.states import AlertLevel, Control, MigrationStatus, Status
from migratrack.core.views import Dashboard, Overview
from migratrack.errors import (
    ApprovalRequired,
    ConfigurationError,
    DependencyNotMet,
    InvalidInput,
    InvalidPlan,
    InvalidTransition,
    MigrationCancelled,
    MigrationNotFound,
    MigratrackError,
    NotFound,
    PlanMismatch,
    RuleViolation,
    StorageError,
    StorageUnavailable,
)
from migratrack.sdk import AsyncMigrationProgressTracker, MigrationProgressTracker, load_plan
from migratrack.service import MigrationService
from migratrack.storage import Storage, open_storage

__version__ = "0.1.0"

__all__ = [
    "Alert",
    "AlertLevel",
    "ApprovalRequired",
    "AsyncMigrationProgressTracker",
    "ConfigurationError",
    "Control",
    "Dashboard",
    "DependencyNotMet",
    "Estimate",
    "Event",
    "InvalidInput",
    "InvalidPlan",
    "InvalidTransition",
    "MigrationCancelled",
    "MigrationNotFound",
    "MigrationProgressTracker",
    "MigrationService",
    "MigrationStatus",
    "MigratrackError",
    "NotFound",
    "Overview",
    "Phase",
    "PlanMismatch",
    "RuleViolation",
    "Status",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "SubTask",
    "__version__",
    "load_plan",
    "open_storage",
]
