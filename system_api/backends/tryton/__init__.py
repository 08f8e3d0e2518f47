"""Tryton 8.x as the gateway's ERP and WMS, over JSON-RPC (see docs/decisions/0004).

client = TrytonClient.connect(TrytonConnection(url, database, user, password), breaker)
erp = TrytonErp(client)
wms = TrytonWms(client, erp)
...
await client.aclose()
"""

from system_api.backends.tryton.erp import TrytonErp
from system_api.backends.tryton.rpc import (
    TrytonClient,
    TrytonConnection,
    TrytonError,
    TrytonUnavailable,
)
from system_api.backends.tryton.wms import TrytonWms

__all__ = [
    "TrytonClient",
    "TrytonConnection",
    "TrytonErp",
    "TrytonError",
    "TrytonUnavailable",
    "TrytonWms",
]
