"""Reading /metrics in tests: the text exposition parsed by prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Samples:
    """Every sample of one scrape, by sample name and labels."""

    values: Mapping[tuple[str, frozenset[tuple[str, str]]], float]
    families: Mapping[str, str]
    """Family name -> type (counter, gauge, histogram, ...)."""

    @classmethod
    def parse(cls, text: str) -> Samples:
        values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        families: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in values, f"sample {key} appears twice"
                values[key] = sample.value
        return cls(values, families)

    def get(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels, or None when there is none."""
        return self.values.get((name, frozenset(labels.items())))

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels; 0 when absent (a series not counted yet)."""
        return self.get(name, **labels) or 0.0

    def series(self, name: str) -> list[dict[str, str]]:
        """The label sets of every sample of this name."""
        return [dict(labels) for sample, labels in self.values if sample == name]


async def scrape(http: httpx.AsyncClient, **headers: str) -> Samples:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Samples.parse(response.text)
