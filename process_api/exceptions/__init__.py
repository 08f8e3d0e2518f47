"""Exception records of the process layer: what needs a person, raised once per open problem."""

from process_api.exceptions.repository import (
    get_exception,
    list_exceptions,
    open_exception,
    resolve_exceptions,
)

__all__ = ["get_exception", "list_exceptions", "open_exception", "resolve_exceptions"]
