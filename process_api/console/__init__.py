"""The ops console for people (/ops): server-rendered pages over the process layer's services,
operator accounts and sessions (docs/ops-console.md)."""

from process_api.console.app import create_console_app
from process_api.console.operators import Operator, OperatorError, Operators
from process_api.console.overview import ConsoleReads

__all__ = ["ConsoleReads", "Operator", "OperatorError", "Operators", "create_console_app"]
