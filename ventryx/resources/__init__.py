"""The API's nouns, one module each."""

from ventryx.resources.events import AsyncEvents
from ventryx.resources.workflows import AsyncWorkflows

__all__ = ["AsyncEvents", "AsyncWorkflows"]
