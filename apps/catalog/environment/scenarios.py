"""Stage 1 of the environment generator, scenario decomposition: the domains, their sub-scenarios (one tool
each, `tool_table.TOOLS`) and the values users mention (`POOLS`), with how a user writes them (`say`)."""

from __future__ import annotations

import datetime

# Ten domains, each split into sub-scenarios (one tool each, see tool_table.TOOLS), and the values users mention.
DOMAINS = {
    "weather": ("current conditions", "forecast"),
    "finance": ("ticker lookup", "stock price"),
    "currency": ("conversion", "exchange rate"),
    "travel": ("airport codes", "flight search"),
    "restaurants": ("restaurant search", "table booking"),
    "orders": ("customer accounts", "order tracking"),
    "calendar": ("scheduling", "weekdays", "date arithmetic"),
    "units": ("length", "temperature"),
    "math": ("body-mass index", "loan payment", "tipping"),
    "geography": ("capitals", "population"),
}

_FIRST_NAMES = ("alice", "bob", "carla", "deepak", "emma", "farid", "grace", "hiro", "ines", "jonas", "kemi", "liam")
_LAST_NAMES = ("smith", "garcia", "chen", "muller", "okafor", "rossi", "tanaka", "silva", "novak", "khan")
_CITIES = (
    "Paris",
    "London",
    "Tokyo",
    "New York",
    "Berlin",
    "Madrid",
    "Rome",
    "Sydney",
    "Toronto",
    "Cairo",
    "Mumbai",
    "Seoul",
    "Lisbon",
    "Dublin",
    "Chicago",
    "Singapore",
    "Mexico City",
    "Buenos Aires",
    "Nairobi",
    "Oslo",
)
_COUNTRIES = (
    "France",
    "Japan",
    "Germany",
    "Spain",
    "Italy",
    "Canada",
    "Egypt",
    "India",
    "Brazil",
    "Kenya",
    "Norway",
    "Portugal",
    "Ireland",
    "Mexico",
    "Argentina",
    "Australia",
    "South Korea",
    "Thailand",
)
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "INR", "CNY", "MXN")
CUISINES = ("italian", "japanese", "mexican", "indian", "french", "thai", "chinese")
LENGTH_UNITS = ("mm", "cm", "m", "km", "in", "ft", "yd", "mi")
TEMPERATURE_UNITS = ("celsius", "fahrenheit", "kelvin")

# Values users mention, by pool name; every tuple is ordered, so sampling from it is reproducible.
POOLS: dict[str, tuple] = {
    "city": _CITIES,
    "country": _COUNTRIES,
    "place": _COUNTRIES + _CITIES,
    "company": (
        "Apple",
        "Microsoft",
        "Alphabet",
        "Amazon",
        "Tesla",
        "Nvidia",
        "Netflix",
        "Intel",
        "Adobe",
        "Nike",
        "Coca-Cola",
        "Disney",
        "Boeing",
        "IBM",
        "Oracle",
        "Salesforce",
    ),
    "ticker": (
        "AAPL",
        "MSFT",
        "GOOGL",
        "AMZN",
        "TSLA",
        "NVDA",
        "NFLX",
        "INTC",
        "ADBE",
        "NKE",
        "KO",
        "DIS",
        "BA",
        "IBM",
        "ORCL",
        "CRM",
    ),
    "airport": (
        "CDG",
        "LHR",
        "HND",
        "JFK",
        "BER",
        "MAD",
        "FCO",
        "SYD",
        "YYZ",
        "CAI",
        "BOM",
        "ICN",
        "LIS",
        "DUB",
        "ORD",
        "SIN",
    ),
    "date": tuple((datetime.date(2025, 1, 1) + datetime.timedelta(days=d)).isoformat() for d in range(365)),
    "time": ("12:00", "12:30", "13:00", "18:00", "18:30", "19:00", "19:30", "20:00", "20:30", "21:00"),
    "event_time": tuple(f"{h:02d}:{m:02d}" for h in range(8, 18) for m in (0, 30)),
    "currency": CURRENCIES,
    "amount": (10.0, 20.0, 25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 250.0, 500.0, 750.0, 1000.0, 1200.0, 2500.0),
    "email": tuple(f"{f}.{last}@example.com" for f in _FIRST_NAMES for last in _LAST_NAMES),
    "user_id": tuple(f"U{100000 + 7919 * i}" for i in range(100)),
    "order_id": tuple(f"ORD-{10000 + 373 * i}" for i in range(200)),
    "restaurant_id": tuple(f"R-{1000 + 89 * i}" for i in range(100)),
    "cuisine": CUISINES,
    "price_level": (1, 2, 3),
    "party_size": tuple(range(2, 11)),
    "title": (
        "team standup",
        "dentist appointment",
        "project review",
        "lunch with Sam",
        "yoga class",
        "budget meeting",
        "call with the bank",
        "birthday dinner",
        "1:1 with Maria",
        "piano lesson",
    ),
    "duration": (15, 30, 45, 90, 120),
    "length_value": (2.0, 2.5, 3.0, 5.0, 10.0, 12.0, 26.2, 42.0, 100.0, 250.0, 1000.0),
    "length_unit": LENGTH_UNITS,
    "temperature_value": (-10.0, 0.0, 12.5, 20.0, 25.0, 37.0, 68.0, 98.6, 100.0, 300.0),
    "temperature_unit": TEMPERATURE_UNITS,
    "weight": tuple(float(w) for w in range(48, 121, 4)),
    "height": tuple(float(h) for h in range(150, 201, 3)),
    "principal": (5000.0, 10000.0, 15000.0, 25000.0, 50000.0, 100000.0, 200000.0, 250000.0, 350000.0),
    "rate": (2.5, 3.0, 3.5, 3.9, 4.2, 4.5, 5.0, 5.5, 6.25, 7.0),
    "years": (2, 3, 5, 10, 15, 20, 25, 30),
    "bill": (18.5, 24.0, 37.8, 42.0, 56.25, 64.9, 88.0, 120.0, 135.6, 210.0),
    "tip_percent": (10.0, 12.0, 18.0, 20.0, 22.0, 25.0),
    "people": tuple(range(2, 9)),
    "year": (2000, 2005, 2010, 2015, 2020, 2023, 2024),
}
# How some values are said in a request (the call still uses the value itself).
SPOKEN = {
    "cuisine": {c: c.capitalize() for c in CUISINES},
    "length_unit": {
        "mm": "millimetres",
        "cm": "centimetres",
        "m": "metres",
        "km": "kilometres",
        "in": "inches",
        "ft": "feet",
        "yd": "yards",
        "mi": "miles",
    },
    "temperature_unit": {"celsius": "degrees Celsius", "fahrenheit": "degrees Fahrenheit", "kelvin": "kelvin"},
}
DATE_STYLES = ("iso", "month_first", "day_first")  # 2025-03-14, March 14, 2025, 14 March 2025


def say(pool: str, value, date_style: str = "iso") -> str:
    """A value as a user would write it."""
    if pool == "date" and date_style != "iso":
        day = datetime.date.fromisoformat(value)
        return f"{day:%B} {day.day}, {day.year}" if date_style == "month_first" else f"{day.day} {day:%B} {day.year}"
    if pool in SPOKEN:
        return SPOKEN[pool][value]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
