"""Textual messages that carry engine events from a worker thread to the app.

The engine calls `on_event` from the worker thread; the app wraps each event in one of these
messages and posts it to itself (`post_message` is thread-safe). Batch progress messages may
replace one another while they wait in the queue (`can_replace`), so a slow SSH link or a busy
UI never builds a backlog of stale progress lines.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from engine.events import BatchProgress, Event


class EngineEvent(Message):
    """One engine event from the running job (`job` is train, sweep or export)."""

    def __init__(self, job: str, event: Event) -> None:
        super().__init__()
        self.job = job
        self.event = event

    def __repr__(self) -> str:  # shows up in textual's devtools log
        return f"EngineEvent({self.job!r}, {self.event!r})"


class EngineProgress(EngineEvent):
    """A throttled batch-progress event; a newer one replaces an older one still queued."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EngineProgress) and message.job == self.job


class JobFinished(Message):
    """The worker returned (`result`) or raised (`error`, one line for the dialog)."""

    def __init__(
        self, job: str, result: Any = None, error: str | None = None, title: str = ""
    ) -> None:
        super().__init__()
        self.job = job
        self.result = result
        self.error = error
        self.title = title


def wrap(job: str, event: Event) -> EngineEvent:
    """The message for one engine event."""
    if isinstance(event, BatchProgress):
        return EngineProgress(job, event)
    return EngineEvent(job, event)
