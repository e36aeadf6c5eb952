"""The dashboard's read model: active stories from the ``stories`` and ``alerts`` topics,
held on every worker with kept indexes, and the live feed of what changed."""

from streams.cursors import BadCursor
from streams.read_model.events import EventFeed
from streams.read_model.follower import ReadModelFollower
from streams.read_model.index import SORTS
from streams.read_model.metrics import ReadModelMetrics
from streams.read_model.model import StoryPage, StoryQuery, StoryReadModel

__all__ = [
    "SORTS",
    "BadCursor",
    "EventFeed",
    "ReadModelFollower",
    "ReadModelMetrics",
    "StoryPage",
    "StoryQuery",
    "StoryReadModel",
]
