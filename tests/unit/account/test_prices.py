"""The price table is dated, names its sources, and covers the instance types the project uses."""

from __future__ import annotations

import datetime as dt

from local_mlops.account import prices
from local_mlops.config import Settings


def test_the_table_is_dated_and_sourced() -> None:
    table = prices.table("us-east-1")
    assert dt.date.fromisoformat(table.date)
    assert table.sources and all(s.startswith("https://aws.amazon.com/") for s in table.sources)
    assert not table.fallback


def test_the_default_instance_types_have_prices() -> None:
    settings = Settings()
    table = prices.table(settings.region)
    assert table.hourly("jobs", settings.training_instance_type)
    assert table.hourly("jobs", settings.processing_instance_type)
    assert table.hourly("hosting", "ml.m5.large")
    assert table.hourly("hosting", "ml.nonexistent") is None


def test_a_region_without_figures_says_whose_are_used() -> None:
    table = prices.table("ap-southeast-2")
    assert table.fallback and table.region == "us-east-1"
    assert table.describe()["fallback"] is True
