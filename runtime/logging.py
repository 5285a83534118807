"""structlog set-up: JSON lines off a TTY, console rendering on one, for structlog and stdlib loggers alike.

Every line is an event name that never varies plus its fields, so a log store can filter on
either. Log lines carry references and identifiers only, never a child's name, date of birth,
address or a free-text account. The Temporal SDK's own loggers (including `workflow.logger`,
whose `extra` becomes fields) go through the same renderer, with the workflow's or activity's
identifiers as fields of their own rather than folded into the event text.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog
from temporalio import activity, workflow
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

# The SDK's loggers put their context in these `extra` keys; each of its items becomes a field.
TEMPORAL_CONTEXT = ("temporal_workflow", "temporal_activity")


def lift_temporal_context(_: Any, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """`workflow_id`, `workflow_type`, `run_id`, `activity_type`... as top-level fields; a line's own fields win.

    A line forwarded from the SDK's Core carries its own fields and its target the same way."""
    core = event.pop("temporal_log", None)
    contexts = [event.pop(key, None) for key in TEMPORAL_CONTEXT]
    if core is not None:
        contexts.append({"core_target": core.target, **core.fields})
    for context in contexts:
        if isinstance(context, dict):
            for name, value in context.items():
                event.setdefault(name, value)
    return event


def drop_empty_arguments(_: Any, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """A stdlib line logged without arguments needs no `positional_args` field."""
    if event.get("positional_args") == ():
        del event["positional_args"]
    return event


SHARED_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    lift_temporal_context,
    drop_empty_arguments,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
    structlog.processors.format_exc_info,
]


def log_handler(as_json: bool, stream: IO[str] | None = None) -> logging.Handler:
    """A stdlib handler rendering every record, structlog's or the stdlib's, through the shared processors."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=SHARED_PROCESSORS,
            # A stdlib line's template is its event and its arguments a field: "Started server process [%d]"
            # is one event however many processes start.
            use_get_message=False,
            pass_foreign_args=True,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    return handler


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    root = logging.getLogger()
    root.handlers = [log_handler(as_json)]
    root.setLevel(numeric_level)
    # The SDK would append its context to the event text, making every line unique; it stays in `extra`.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False

    structlog.configure(
        processors=[*SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


class ActivityLogContext(Interceptor):
    """A worker interceptor: every line an activity logs carries the workflow that scheduled it (a referral's ID
    is its reference) and the activity's type and attempt."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindActivityContext(next)


class _BindActivityContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        with structlog.contextvars.bound_contextvars(
            workflow_id=info.workflow_id,
            workflow_type=info.workflow_type,
            activity_type=info.activity_type,
            attempt=info.attempt,
        ):
            return await super().execute_activity(input)
