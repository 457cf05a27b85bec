"""What an email about an order says, fixed at the moment of the event.

An outbox row carries these facts in its context, so rendering never reads the orders
table (the orders app sits above this one) and an email tells what was true when its
event happened: the place in the queue when the order had to wait, the collection
deadline set when the unit was held. Names (the SKU's, the store's) are read at render
time from their own tables, which change only when the catalogue does.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OrderFacts:
    reference: str
    sku_id: int
    fulfilment: str
    store_id: int | None = None
    collect_by: datetime.datetime | None = None
    # The order's place among orders waiting in its pool when the event happened.
    position: int | None = None

    def context(self) -> dict[str, Any]:
        return {
            "sku": self.sku_id,
            "store": self.store_id,
            "fulfilment": self.fulfilment,
            "collect_by": self.collect_by.isoformat() if self.collect_by else None,
            "position": self.position,
        }

    @classmethod
    def from_row(cls, *, reference: str, context: dict[str, Any]) -> OrderFacts | None:
        """The facts an outbox row carries, or None for a message about no order."""
        if not reference:
            return None
        collect_by = context.get("collect_by")
        return cls(
            reference=reference,
            sku_id=context.get("sku") or 0,
            fulfilment=context.get("fulfilment") or "",
            store_id=context.get("store"),
            collect_by=datetime.datetime.fromisoformat(collect_by) if collect_by else None,
            position=context.get("position"),
        )
