"""ORM models, one module each, re-exported here so imports never cycle."""

from app.models.analysis import Analysis
from app.models.api_key import ApiKey
from app.models.audit import AuditEvent
from app.models.base import Base
from app.models.baseline import Baseline
from app.models.budget import BudgetIteration, BudgetStatus, PerformanceBudget
from app.models.dataset import Dataset
from app.models.feedback import RecommendationFeedback
from app.models.gate import Gate
from app.models.history import HistoryPoint
from app.models.llm_call import LLMCall
from app.models.plan import Plan, PlanStatus
from app.models.run import (
    FINISHED_STATUSES,
    Run,
    RunArchive,
    RunEvent,
    RunHistogram,
    RunResult,
    RunSample,
    RunStatus,
)

__all__ = [
    "FINISHED_STATUSES",
    "Analysis",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Baseline",
    "BudgetIteration",
    "BudgetStatus",
    "Dataset",
    "Gate",
    "HistoryPoint",
    "LLMCall",
    "PerformanceBudget",
    "Plan",
    "PlanStatus",
    "RecommendationFeedback",
    "Run",
    "RunArchive",
    "RunEvent",
    "RunHistogram",
    "RunResult",
    "RunSample",
    "RunStatus",
]
