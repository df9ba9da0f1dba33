"""A sibling module of the shop agent (``from inventory import ...``), as real agents have."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

STOCK = {"apples": 12, "pears": 0}


@dataclass
class ShopData:
    """The session's userdata."""

    lookups: list[str] = field(default_factory=list)


async def count(item: str, seconds: float) -> int:
    await asyncio.sleep(seconds)  # a database round trip
    return STOCK.get(item, 0)
