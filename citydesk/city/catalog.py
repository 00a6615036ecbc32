"""What the city-status feeds measure: one ObservedProperty per measure, and the labelled series.

Shared by the seeder (which creates the entities), the simulator (which finds the live ones by
``measure``) and the section TOML files (which name the ObservedProperty). Units follow UCUM where
a symbol exists; money is in Korean won.
"""

from __future__ import annotations

from dataclasses import dataclass

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
COUNT_OBSERVATION = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation"
DEFINITION = "urn:citydesk:def:property:"


@dataclass(frozen=True, slots=True)
class CityMeasure:
    """One measure of a city feed, published as an ObservedProperty with this name."""

    key: str
    name: str
    description: str
    unit_name: str
    symbol: str
    observation_type: str = MEASUREMENT

    @property
    def definition(self) -> str:
        return DEFINITION + self.key.replace("_", "-")

    @property
    def unit(self) -> dict[str, str]:
        return {
            "name": self.unit_name,
            "symbol": self.symbol,
            "definition": f"urn:citydesk:def:unit:{self.symbol}",
        }


MEASURES: dict[str, CityMeasure] = {
    m.key: m
    for m in (
        CityMeasure("bikes_available", "Bikes available", "Ddareungi bikes docked and rentable at a station",
                    "bicycle", "{bikes}", COUNT_OBSERVATION),
        CityMeasure("turbidity", "Turbidity", "Turbidity of treated water leaving a purification centre",
                    "nephelometric turbidity unit", "NTU"),
        CityMeasure("residual_chlorine", "Residual chlorine", "Free residual chlorine of treated water",
                    "milligram per litre", "mg/L"),
        CityMeasure("ph", "pH", "pH of treated water", "pH", "pH"),
        CityMeasure("parking_available", "Parking spaces free", "Free spaces in a public car park",
                    "parking space", "{spaces}", COUNT_OBSERVATION),
        CityMeasure("parking_occupancy", "Parking occupancy", "Share of a car park's spaces taken",
                    "percent", "%"),
        CityMeasure("rainfall", "Rainfall intensity", "Rain falling at a district's gauge, as an hourly rate",
                    "millimetre per hour", "mm/h"),
        CityMeasure("park_visitors", "Park visitors", "People in the park (counted at its gates)",
                    "people", "{people}", COUNT_OBSERVATION),
        CityMeasure("living_population", "Living population",
                    "People present in a district (residents and visitors), estimated", "people", "{people}",
                    COUNT_OBSERVATION),
        CityMeasure("retail_price", "Retail price", "Retail price of a staple good at a market",
                    "Korean won", "KRW"),
        CityMeasure("tax_revenue", "Tax revenue", "Local tax collected in the month",
                    "100 million Korean won", "억원"),
        CityMeasure("budget_execution", "Budget execution rate",
                    "Share of the year's budget spent so far (cumulative)", "percent", "%"),
    )
}  # fmt: skip

GOODS: dict[str, tuple[str, str]] = {
    "rice": ("쌀 (20kg)", "Rice (20 kg)"),
    "napa_cabbage": ("배추 (1포기)", "Napa cabbage (1 head)"),
    "radish": ("무 (1개)", "Radish (1)"),
    "pork_belly": ("삼겹살 (100g)", "Pork belly (100 g)"),
    "eggs": ("달걀 (30구)", "Eggs (30)"),
    "apple": ("사과 (1개)", "Apple (1)"),
    "mackerel": ("고등어 (1마리)", "Mackerel (1)"),
}
"""Staple goods of the price survey: key in the feed → (Korean, English) label."""

TAXES: dict[str, tuple[str, str]] = {
    "acquisition_tax": ("취득세", "Acquisition tax"),
    "property_tax": ("재산세", "Property tax"),
    "local_income_tax": ("지방소득세", "Local income tax"),
    "automobile_tax": ("자동차세", "Automobile tax"),
    "local_consumption_tax": ("지방소비세", "Local consumption tax"),
}
"""Taxes of the finance feed: key in the feed → (Korean, English) label."""
