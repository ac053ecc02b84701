"""The price table (``prices.toml``: dated, per region, with its sources) and cost estimates."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

Use = Literal["jobs", "hosting"]
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class PriceTable:
    date: str
    sources: tuple[str, ...]
    region: str  # the region whose figures are used
    fallback: bool  # True when the asked region has no entry
    figures: dict[str, Any]

    def hourly(self, use: Use, instance_type: str) -> float | None:
        """USD per instance-hour, or None when the table has no figure for the type."""
        value = self.figures.get(use, {}).get(instance_type)
        return float(value) if value is not None else None

    def gb_month(self, store: Literal["s3", "ecr"]) -> float:
        return float(self.figures[f"{store}_gb_month"])

    def describe(self) -> dict[str, Any]:
        """Where the figures come from, for --json and the status footer."""
        return {
            "date": self.date,
            "region": self.region,
            "fallback": self.fallback,
            "sources": list(self.sources),
        }


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    return tomllib.loads((resources.files("local_mlops.account") / "prices.toml").read_text())


def table(region: str) -> PriceTable:
    """The figures for ``region``, or the fallback region's when the table has none."""
    raw = _raw()
    regions = raw["regions"]
    used = region if region in regions else str(raw["fallback_region"])
    return PriceTable(
        date=str(raw["date"]),
        sources=tuple(raw["sources"]),
        region=used,
        fallback=used != region,
        figures=regions[used],
    )
