"""The environment generator: FTRL's five stages, done by a seeded program instead of an LLM.

1. scenario decomposition → domains, sub-scenarios and the values users mention (`POOLS`)
2. tool document generation → `TOOLS`, each rendered as an OpenAI-style JSON schema (`tool_document`)
3. function integration → `CHAINS`, where one tool's output is another's argument
4. complexity scaling → one builder per query kind (`_QueryBuilder`)
5. local deployment → each tool's implementation is the source of its function in `implementations`,
   and every output the records mention comes from running it

Pure Python (no Django); `generate_environment(EnvironmentConfig(seed=...))` is deterministic.
"""

from __future__ import annotations

import datetime
import inspect
import json
import random
import string
from collections import Counter
from dataclasses import dataclass, field

from apps.rewards.parsing import render_call_list

from ..records import KINDS, QuerySpec, ToolSpec
from . import implementations


@dataclass(frozen=True)
class EnvironmentConfig:
    """What to generate. Same config → the same tools and queries, byte for byte."""

    seed: int = 0  # the only source of randomness (random.Random(seed))
    queries: int = 200  # how many queries; 200 gives every kind and difficulty bucket
    eval_fraction: float = 0.2  # share of queries held out (split "eval"); the usual 80/20 split
    # Relative weights of the query kinds. Single calls lead and multiple / parallel / parallel-multiple
    # follow in equal parts, after BFCL's AST categories; multi-hop is weighted up because FTRL's
    # environments are built around chained calls; irrelevance and missing-info teach when not to call.
    weight_single: float = 0.20
    weight_multiple: float = 0.15
    weight_parallel: float = 0.15
    weight_parallel_multiple: float = 0.10
    weight_multi_hop: float = 0.20
    weight_irrelevance: float = 0.10
    weight_missing_info: float = 0.10

    def __post_init__(self):
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.queries, int) or isinstance(self.queries, bool) or self.queries < 1:
            raise ValueError(f"queries must be a whole number of at least 1, got {self.queries!r}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction!r}")
        for kind, weight in self.kind_weights.items():
            if weight < 0:
                raise ValueError(f"weight_{kind} must not be negative, got {weight!r}")
        if sum(self.kind_weights.values()) <= 0:
            raise ValueError("at least one kind weight must be positive")

    @property
    def kind_weights(self) -> dict[str, float]:
        return {kind: getattr(self, f"weight_{kind}") for kind in KINDS}


@dataclass
class Environment:
    """The generated tools (with implementations) and the queries over them."""

    tools: list[ToolSpec]
    queries: list[QuerySpec]

    def counts(self) -> dict[str, dict[str, int]]:
        """Queries by kind, split and difficulty bucket."""
        return {
            "kind": dict(Counter(q.kind for q in self.queries)),
            "split": dict(Counter(q.split for q in self.queries)),
            "difficulty": dict(Counter(q.difficulty_bucket for q in self.queries)),
        }


# --- Stage 1: scenario decomposition -------------------------------------------------------------
# Ten domains, each split into sub-scenarios (one tool each, see TOOLS), and the values users mention.
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


# --- Stage 2: tool document generation -----------------------------------------------------------
@dataclass(frozen=True)
class Param:
    type: str  # JSON schema type: string, integer, number or boolean
    description: str
    pool: str = ""  # where values come from when a request names the parameter ("" = only set by a template)
    default: object = None  # None = required
    enum: tuple | None = None
    label: str = ""  # how a question for the missing value names it (default: the name)

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class Tool:
    """One sub-scenario's tool: its document, the requests that call it, and what its output answers."""

    name: str
    domain: str
    description: str
    params: dict[str, Param]
    # Requests: "text with {param} slots" or (text, {param: value the words imply}). A request naming every
    # required parameter asks for a call; one lacking exactly one required parameter is a missing-info case.
    requests: tuple
    answer_keys: tuple[str, ...]  # output fields whose values make the FTRL sub-answer
    summary: str  # the final answer, formatted with the output

    def request_templates(self, missing: bool) -> list[tuple[str, dict, str | None]]:
        """(template, implied arguments, missing parameter) for complete or missing-info requests."""
        out = []
        for request in self.requests:
            text, implied = (request, {}) if isinstance(request, str) else request
            named = _slots(text) | set(implied)
            absent = [p for p, spec in self.params.items() if spec.required and p not in named]
            if (len(absent) == 1) if missing else not absent:
                out.append((text, implied, absent[0] if missing else None))
        return out


def _slots(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


UNIT = Param("string", "Temperature unit.", default="celsius", enum=("celsius", "fahrenheit"))
DATE = Param("string", "Date, YYYY-MM-DD.", "date")
CITY = Param("string", "City name, e.g. Paris.", "city")

TOOLS: tuple[Tool, ...] = (
    Tool(
        "get_current_weather",
        "weather",
        "Get the current weather in a city.",
        {"city": CITY, "unit": UNIT},
        (
            "What's the weather like in {city} right now?",
            "How warm is it in {city} at the moment?",
            "Current weather for {city}, please.",
            "Is it raining in {city} right now?",
            ("What's the temperature in {city} right now, in Fahrenheit?", {"unit": "fahrenheit"}),
            ("Give me the current temperature in {city} in Celsius.", {"unit": "celsius"}),
            "What's the weather like right now?",
            "Do I need an umbrella? Check the current weather for me.",
        ),
        ("temperature", "condition"),
        "{city}: {temperature} degrees {unit}, {condition}",
    ),
    Tool(
        "get_weather_forecast",
        "weather",
        "Get the weather forecast for a city on a given day.",
        {"city": CITY, "date": Param("string", "Day of the forecast, YYYY-MM-DD.", "date"), "unit": UNIT},
        (
            "What will the weather be in {city} on {date}?",
            "Forecast for {city} on {date}, please.",
            "Will it rain in {city} on {date}?",
            ("How hot will it get in {city} on {date}? Answer in Fahrenheit.", {"unit": "fahrenheit"}),
            "What's the forecast for {date}?",
            "What will the weather be like in {city} later this week?",
        ),
        ("high", "low", "condition"),
        "{city} on {date}: {low} to {high} degrees {unit}, {condition}",
    ),
    Tool(
        "lookup_ticker",
        "finance",
        "Find the stock ticker symbol of a listed company.",
        {"company": Param("string", "Company name, e.g. Apple.", "company")},
        (
            "What's the ticker symbol for {company}?",
            "Which ticker does {company} trade under?",
            "Look up the stock symbol of {company}.",
            "Look up a stock ticker for me.",
        ),
        ("ticker",),
        "{company} trades as {ticker}",
    ),
    Tool(
        "get_stock_price",
        "finance",
        "Get the closing price of a stock on a trading day.",
        {
            "ticker": Param("string", "Ticker symbol, e.g. AAPL (see lookup_ticker).", "ticker", label="ticker symbol"),
            "date": Param("string", "Trading day, YYYY-MM-DD.", "date"),
        },
        (
            "What was the closing price of {ticker} on {date}?",
            "How much did {ticker} close at on {date}?",
            "Get me the {ticker} share price for {date}.",
            "What did {ticker} close at?",
            "What did the stock close at on {date}?",
        ),
        ("close",),
        "{ticker} closed at {close} USD on {date}",
    ),
    Tool(
        "convert_currency",
        "currency",
        "Convert an amount of money from one currency to another.",
        {
            "amount": Param("number", "Amount of money to convert.", "amount"),
            "from_currency": Param(
                "string",
                "ISO code of the currency to convert from.",
                "currency",
                enum=CURRENCIES,
                label="currency to convert from",
            ),
            "to_currency": Param(
                "string",
                "ISO code of the currency to convert to.",
                "currency",
                enum=CURRENCIES,
                label="currency to convert to",
            ),
        },
        (
            "Convert {amount} {from_currency} to {to_currency}.",
            "How much is {amount} {from_currency} in {to_currency}?",
            "I have {amount} {from_currency}. What's that in {to_currency}?",
            "How much would my {from_currency} be worth in {to_currency}?",
            "Convert {amount} {from_currency} for me.",
        ),
        ("converted",),
        "{amount} {from_currency} = {converted} {to_currency}",
    ),
    Tool(
        "get_exchange_rate",
        "currency",
        "Get the exchange rate between two currencies.",
        {
            "base": Param(
                "string", "ISO code of the currency to price.", "currency", enum=CURRENCIES, label="base currency"
            ),
            "target": Param(
                "string",
                "ISO code of the currency to price it in.",
                "currency",
                enum=CURRENCIES,
                label="target currency",
            ),
        },
        (
            "What's the exchange rate from {base} to {target}?",
            "How many {target} does one {base} buy?",
            "Current {base}/{target} rate?",
            "What's the exchange rate for {base} today?",
        ),
        ("rate",),
        "1 {base} = {rate} {target}",
    ),
    Tool(
        "get_airport_code",
        "travel",
        "Get the IATA code of a city's main airport.",
        {"city": CITY},
        (
            "What's the airport code for {city}?",
            "Which IATA code does the main airport of {city} have?",
            "Give me the airport code of {city}.",
        ),
        ("airport_code",),
        "{city}: {airport_code}",
    ),
    Tool(
        "search_flights",
        "travel",
        "Search flights between two airports on a date.",
        {
            "origin": Param(
                "string",
                "IATA code of the departure airport, e.g. CDG (see get_airport_code).",
                "airport",
                label="departure airport",
            ),
            "destination": Param(
                "string", "IATA code of the arrival airport, e.g. JFK.", "airport", label="destination airport"
            ),
            "date": Param("string", "Departure date, YYYY-MM-DD.", "date", label="travel date"),
            "cabin_class": Param(
                "string", "Cabin class.", default="economy", enum=("economy", "premium_economy", "business", "first")
            ),
            "nonstop_only": Param("boolean", "Only flights without stops.", default=False),
        },
        (
            "Find flights from {origin} to {destination} on {date}.",
            "Are there any flights from {origin} to {destination} on {date}?",
            ("Search business class flights from {origin} to {destination} for {date}.", {"cabin_class": "business"}),
            ("I need a nonstop flight from {origin} to {destination} on {date}.", {"nonstop_only": True}),
            "Find me a flight from {origin} to {destination}.",
            "I want to fly to {destination} on {date}. What flights are there?",
        ),
        ("cheapest_flight", "cheapest_price"),
        "cheapest {origin}-{destination} flight on {date}: {cheapest_flight} at {cheapest_price} USD",
    ),
    Tool(
        "find_restaurant",
        "restaurants",
        "Find the best-rated restaurant of a cuisine in a city.",
        {
            "city": CITY,
            "cuisine": Param("string", "Type of food.", "cuisine", enum=CUISINES),
            "max_price": Param("integer", "Highest price level, 1 (cheap) to 4 (expensive).", "price_level", default=4),
        },
        (
            "Find a good {cuisine} restaurant in {city}.",
            "Where can I get {cuisine} food in {city}?",
            "Recommend the best {cuisine} place in {city} with a price level of at most {max_price}.",
            ("I'm looking for a cheap {cuisine} restaurant in {city}.", {"max_price": 1}),
            "Find me somewhere nearby that serves {cuisine} food.",
            "What's the best restaurant in {city}?",
        ),
        ("name", "restaurant_id"),
        "{name} ({restaurant_id}), rated {rating}",
    ),
    Tool(
        "book_table",
        "restaurants",
        "Reserve a table at a restaurant.",
        {
            "restaurant_id": Param(
                "string", "Restaurant id, e.g. R-1234 (see find_restaurant).", "restaurant_id", label="restaurant ID"
            ),
            "date": DATE,
            "time": Param("string", "Time, HH:MM (24-hour).", "time"),
            "party_size": Param("integer", "Number of guests.", "party_size", label="number of guests"),
        },
        (
            "Book a table at restaurant {restaurant_id} for {party_size} on {date} at {time}.",
            "Reserve {restaurant_id} for {party_size} people, {date}, {time}.",
            "Can you get me a table for {party_size} at {restaurant_id} on {date} at {time}?",
            "Book a table at {restaurant_id} on {date} at {time}.",
            "Reserve a table for {party_size} at {restaurant_id} on {date}.",
        ),
        ("confirmation",),
        "booked {restaurant_id} for {party_size} on {date} at {time}: {confirmation}",
    ),
    Tool(
        "get_user_id",
        "orders",
        "Find the customer id registered under an email address.",
        {"email": Param("string", "The customer's email address.", "email", label="email address")},
        (
            "What's the customer ID for {email}?",
            "Look up the user ID registered to {email}.",
            "Find the account id of {email}.",
        ),
        ("user_id",),
        "{email} is customer {user_id}",
    ),
    Tool(
        "get_order_status",
        "orders",
        "Get the status and estimated delivery of a customer's order.",
        {
            "user_id": Param("string", "Customer id, e.g. U123456 (see get_user_id).", "user_id", label="user ID"),
            "order_id": Param("string", "Order number, e.g. ORD-10234.", "order_id", label="order number"),
        },
        (
            "Where is order {order_id} for user {user_id}?",
            "Check the status of order {order_id} (customer {user_id}).",
            "User {user_id} wants to know what's happening with order {order_id}.",
            "What's the status of my order? My user ID is {user_id}.",
            "Where is my order {order_id}?",
        ),
        ("status", "estimated_delivery"),
        "order {order_id}: {status}, estimated delivery {estimated_delivery}",
    ),
    Tool(
        "create_event",
        "calendar",
        "Add an event to the calendar.",
        {
            "title": Param("string", "Event title.", "title"),
            "date": DATE,
            "start_time": Param("string", "Start time, HH:MM (24-hour).", "event_time", label="start time"),
            "duration_minutes": Param("integer", "Length in minutes.", "duration", default=60),
        },
        (
            "Put '{title}' on my calendar for {date} at {start_time}.",
            "Schedule {title} on {date} at {start_time} for {duration_minutes} minutes.",
            "Add an event called {title} on {date}, starting {start_time}.",
            "Add '{title}' to my calendar at {start_time}.",
            "Schedule '{title}' on {date}.",
        ),
        ("event_id", "end"),
        "'{title}' on {date}, {start}-{end} ({event_id})",
    ),
    Tool(
        "get_day_of_week",
        "calendar",
        "Get the weekday of a date.",
        {"date": DATE},
        ("What day of the week is {date}?", "Which weekday falls on {date}?", "Is {date} a weekend day?"),
        ("day_of_week",),
        "{date} is a {day_of_week}",
    ),
    Tool(
        "days_between",
        "calendar",
        "Count the days from one date to another.",
        {
            "start_date": Param("string", "First date, YYYY-MM-DD.", "date", label="start date"),
            "end_date": Param("string", "Second date, YYYY-MM-DD.", "date", label="end date"),
            "inclusive": Param("boolean", "Count both the start and the end day.", default=False),
        },
        (
            "How many days are there between {start_date} and {end_date}?",
            "Count the days from {start_date} to {end_date}.",
            ("How many days from {start_date} to {end_date}, counting both days?", {"inclusive": True}),
            "How many days from {start_date} until my deadline?",
        ),
        ("days",),
        "{days} days from {start_date} to {end_date}",
    ),
    Tool(
        "convert_length",
        "units",
        "Convert a length between metric and imperial units.",
        {
            "value": Param("number", "The length to convert.", "length_value", label="length"),
            "from_unit": Param("string", "Unit to convert from.", "length_unit", enum=LENGTH_UNITS),
            "to_unit": Param("string", "Unit to convert to.", "length_unit", enum=LENGTH_UNITS),
        },
        (
            "Convert {value} {from_unit} to {to_unit}.",
            "How many {to_unit} is {value} {from_unit}?",
            "What is {value} {from_unit} in {to_unit}?",
            "Convert my height from {from_unit} to {to_unit}.",
        ),
        ("result",),
        "{value} {from_unit} = {result} {to_unit}",
    ),
    Tool(
        "convert_temperature",
        "units",
        "Convert a temperature between celsius, fahrenheit and kelvin.",
        {
            "value": Param("number", "The temperature to convert.", "temperature_value", label="temperature"),
            "from_unit": Param(
                "string",
                "Scale to convert from.",
                "temperature_unit",
                enum=TEMPERATURE_UNITS,
                label="scale to convert from (celsius, fahrenheit or kelvin)",
            ),
            "to_unit": Param("string", "Scale to convert to.", "temperature_unit", enum=TEMPERATURE_UNITS),
        },
        (
            "Convert {value} {from_unit} to {to_unit}.",
            "What is {value} {from_unit} in {to_unit}?",
            "How many {to_unit} is {value} {from_unit}?",
            "What is {value} degrees in {to_unit}?",
        ),
        ("result",),
        "{value} {from_unit} = {result} {to_unit}",
    ),
    Tool(
        "calculate_bmi",
        "math",
        "Calculate the body-mass index from weight and height.",
        {
            "weight_kg": Param("number", "Body weight in kilograms.", "weight", label="weight in kilograms"),
            "height_cm": Param("number", "Height in centimetres.", "height", label="height in centimetres"),
        },
        (
            "What's the BMI of someone who weighs {weight_kg} kg and is {height_cm} cm tall?",
            "Calculate my BMI: {weight_kg} kg, {height_cm} cm.",
            "I'm {height_cm} cm and {weight_kg} kg. What is my BMI?",
            "I weigh {weight_kg} kg. What's my BMI?",
            "I'm {height_cm} cm tall; calculate my BMI.",
        ),
        ("bmi", "category"),
        "BMI {bmi} ({category})",
    ),
    Tool(
        "calculate_loan_payment",
        "math",
        "Calculate the monthly payment of a fixed-rate loan.",
        {
            "principal": Param("number", "Amount borrowed.", "principal", label="loan amount"),
            "annual_rate": Param("number", "Yearly interest rate in percent, e.g. 4.5.", "rate", label="interest rate"),
            "years": Param("integer", "Loan term in years.", "years", label="loan term in years"),
        },
        (
            "What's the monthly payment on a ${principal} loan at {annual_rate}% over {years} years?",
            "I'm borrowing {principal} dollars at {annual_rate} percent for {years} years. How much per month?",
            "Calculate the monthly repayment for ${principal} at {annual_rate}% interest, {years}-year term.",
            "How much would I pay each month on a ${principal} loan over {years} years?",
            "Monthly payment for borrowing ${principal} at {annual_rate}%?",
        ),
        ("monthly_payment",),
        "{monthly_payment} a month, {total_paid} in total",
    ),
    Tool(
        "calculate_tip",
        "math",
        "Calculate the tip on a bill and each person's share.",
        {
            "bill_amount": Param("number", "The bill before tip.", "bill", label="bill amount"),
            "tip_percent": Param("number", "Tip in percent.", "tip_percent", default=15.0),
            "people": Param("integer", "Number of people splitting the bill.", "people", default=1),
        },
        (
            "What's the tip at {tip_percent}% on a ${bill_amount} bill?",
            "Our bill is ${bill_amount}. How much should we tip?",
            "Split a ${bill_amount} bill between {people} people, tipping {tip_percent}%.",
            "Calculate the tip on ${bill_amount}, split {people} ways.",
            "What tip do I leave at {tip_percent}%?",
        ),
        ("tip", "total"),
        "tip {tip}, total {total}, {per_person} each",
    ),
    Tool(
        "get_country_capital",
        "geography",
        "Get the capital city of a country.",
        {"country": Param("string", "Country name, e.g. Japan.", "country")},
        (
            "What is the capital of {country}?",
            "Which city is the capital of {country}?",
            "Name the capital city of {country}.",
        ),
        ("capital",),
        "the capital of {country} is {capital}",
    ),
    Tool(
        "get_population",
        "geography",
        "Get the population of a country or city in a year.",
        {
            "place": Param("string", "Country or city name.", "place"),
            "year": Param("integer", "Year, 2000 to 2025.", "year", default=2025),
        },
        (
            "What's the population of {place}?",
            "How many people live in {place}?",
            "What was the population of {place} in {year}?",
            "How many inhabitants did {place} have in {year}?",
            "What was the population in {year}?",
        ),
        ("population",),
        "{place}: {population} people in {year}",
    ),
)
TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}


def tool_document(tool: Tool) -> dict:
    """The tool's parameters as an OpenAI-style JSON schema."""
    properties = {}
    for name, param in tool.params.items():
        prop = {"type": param.type, "description": param.description}
        if param.enum:
            prop["enum"] = list(param.enum)
        if not param.required:
            prop["description"] += f" Default: {json.dumps(param.default)}."
            prop["default"] = param.default
        properties[name] = prop
    required = [name for name, param in tool.params.items() if param.required]
    return {"type": "object", "properties": properties, "required": required}


# --- Stage 3: function integration ----------------------------------------------------------------
@dataclass(frozen=True)
class Chain:
    """A request answered by feeder calls (one turn) whose outputs give arguments of a final call."""

    slots: dict[str, str]  # request slot → pool
    feeders: tuple[tuple[str, dict[str, str]], ...]  # (tool, {param: slot}), called first
    consumer: str  # the tool called with their outputs
    consumer_slots: dict[str, str]  # consumer param → request slot
    links: dict[str, tuple[int, str]]  # consumer param → (feeder index, output key)
    requests: tuple[str, ...]


CHAINS: tuple[Chain, ...] = (
    Chain(
        {"company": "company", "date": "date"},
        (("lookup_ticker", {"company": "company"}),),
        "get_stock_price",
        {"date": "date"},
        {"ticker": (0, "ticker")},
        (
            "What did {company} stock close at on {date}?",
            "How much was one {company} share worth at the close on {date}?",
            "Get me the closing share price of {company} for {date}.",
        ),
    ),
    Chain(
        {"email": "email", "order_id": "order_id"},
        (("get_user_id", {"email": "email"}),),
        "get_order_status",
        {"order_id": "order_id"},
        {"user_id": (0, "user_id")},
        (
            "I'm {email}. Where is my order {order_id}?",
            "My account email is {email}; what's the status of order {order_id}?",
            "Can you track order {order_id}? The account is {email}.",
        ),
    ),
    Chain(
        {"from_city": "city", "to_city": "city", "date": "date"},
        (("get_airport_code", {"city": "from_city"}), ("get_airport_code", {"city": "to_city"})),
        "search_flights",
        {"date": "date"},
        {"origin": (0, "airport_code"), "destination": (1, "airport_code")},
        (
            "Find me flights from {from_city} to {to_city} on {date}.",
            "I want to fly from {from_city} to {to_city} on {date}. What's available?",
            "Search flights between {from_city} and {to_city} for {date}.",
        ),
    ),
    Chain(
        {"country": "country"},
        (("get_country_capital", {"country": "country"}),),
        "get_current_weather",
        {},
        {"city": (0, "capital")},
        (
            "What's the weather like right now in the capital of {country}?",
            "How warm is it in the capital of {country} at the moment?",
            "Check the current weather in the capital city of {country}.",
        ),
    ),
    Chain(
        {"city": "city", "cuisine": "cuisine", "date": "date", "time": "time", "party_size": "party_size"},
        (("find_restaurant", {"city": "city", "cuisine": "cuisine"}),),
        "book_table",
        {"date": "date", "time": "time", "party_size": "party_size"},
        {"restaurant_id": (0, "restaurant_id")},
        (
            "Book a table for {party_size} at the best {cuisine} restaurant in {city} on {date} at {time}.",
            "Find the top {cuisine} place in {city} and reserve it for {party_size} people on {date} at {time}.",
            "We're {party_size} people and want {cuisine} food in {city} on {date}, {time}. Can you book it?",
        ),
    ),
)


# --- Stage 5: local deployment ---------------------------------------------------------------------
def tool_spec(tool: Tool) -> ToolSpec:
    """The tool as stored: its document and, as implementation, the source of its function."""
    source = inspect.getsource(getattr(implementations, tool.name))
    return ToolSpec(tool.name, tool.description, tool_document(tool), source)


def run_call(name: str, arguments: dict) -> dict:
    """Run a tool's real implementation; an error output means the generator built a bad call."""
    output = getattr(implementations, name)(**arguments)
    if "error" in output:
        raise RuntimeError(f"generated call {name}({arguments}) failed: {output['error']}")
    return output


# --- Stage 4: complexity scaling -------------------------------------------------------------------
REFUSALS = ("Sorry, none of the available tools can help with that.", "I can't do that with the tools I have, sorry.")
QUESTIONS = ("Could you tell me the {label}?", "Sure, which {label} should I use?")
OUT_OF_SCOPE = (
    "Write a short poem about the sea.",
    "Tell me a joke about penguins.",
    "Translate 'good morning' into Spanish.",
    "Who wrote Pride and Prejudice?",
    "Summarise the plot of Hamlet in two sentences.",
    "Recommend a good science fiction novel.",
    "What's a good name for a golden retriever puppy?",
    "Explain how photosynthesis works.",
)
Call = tuple[str, dict]  # (tool name, arguments)


@dataclass
class _Draft:
    """A query before it is checked and stored: what a kind's builder decides."""

    messages: list[dict]
    offered: list[str]  # tool names
    calls: list[Call]  # the ground truth; [] = no call is right
    metadata: dict = field(default_factory=dict)
    answer: str = ""  # final answer when not the calls' own summary (multi-hop), or the no-call reply


class _QueryBuilder:
    """Builds one query of each kind; all randomness comes from the shared rng, in a fixed order."""

    def __init__(self, rng: random.Random, specs: dict[str, ToolSpec]):
        self.rng, self.specs = rng, specs
        self.date_style = "iso"

    # --- helpers
    def sample(self, slots: dict[str, str]) -> dict:
        """Values for slots (slot → pool); slots sharing a pool get different values."""
        by_pool: dict[str, list[str]] = {}
        for slot, pool in slots.items():
            by_pool.setdefault(pool, []).append(slot)
        values = {}
        for pool, names in by_pool.items():
            picked = self.rng.sample(POOLS[pool], len(names))
            if pool == "date":
                picked.sort()  # "from A to B" reads in calendar order
            values.update(zip(names, picked))
        return values

    def request(self, tool: Tool, missing: bool = False) -> tuple[str, dict, str | None]:
        """(user text, call arguments in schema order, missing parameter) from one of the tool's requests."""
        template, implied, absent = self.rng.choice(tool.request_templates(missing))
        named = _slots(template)
        slots = {name: tool.params[name].pool for name in tool.params if name in named}  # schema order
        values = self.sample(slots)
        text = template.format(**{k: say(slots[k], v, self.date_style) for k, v in values.items()})
        values.update(implied)
        return text, {p: values[p] for p in tool.params if p in values}, absent

    def join(self, texts: list[str]) -> str:
        """Several requests in one message, in one of a few layouts."""
        style = self.rng.randrange(4)
        if style == 0:
            return " ".join(texts)
        if style == 1:
            return "\n".join(texts)
        if style == 2:
            return f"{('Two', 'Three')[len(texts) - 2]} things. " + " ".join(texts)
        return " ".join(f"{i}. {t}" for i, t in enumerate(texts, 1))

    def extras(self, count: int, exclude: list[str], other_domains: bool = False) -> list[str]:
        """`count` tools not in `exclude` (and, if asked, from none of their domains)."""
        domains = {TOOLS_BY_NAME[n].domain for n in exclude}
        pool = [t.name for t in TOOLS if t.name not in exclude and not (other_domains and t.domain in domains)]
        return self.rng.sample(pool, count)

    def with_maybe_extra(self, names: list[str]) -> list[str]:
        return names + self.extras(self.rng.randrange(2), names)

    # --- one builder per kind
    def single(self) -> _Draft:
        tool = self.rng.choice(TOOLS)
        text, args, _ = self.request(tool)
        return _Draft([_user(text)], self.with_maybe_extra([tool.name]), [(tool.name, args)])

    def multiple(self) -> _Draft:
        tool = self.rng.choice(TOOLS)
        text, args, _ = self.request(tool)
        distractors = self.extras(self.rng.randint(2, 4), [tool.name])
        return _Draft([_user(text)], [tool.name] + distractors, [(tool.name, args)])

    def parallel(self) -> _Draft:
        tool, wanted = self.rng.choice(TOOLS), self.rng.choice((2, 3))
        texts, calls = [], []
        for _ in range(20):  # redraw until the calls differ
            text, args, _ = self.request(tool)
            if all(args != other for _, other in calls):
                texts.append(text)
                calls.append((tool.name, args))
            if len(calls) == wanted:
                break
        assert len(calls) >= 2, f"{tool.name}: could not draw two different calls"
        return _Draft([_user(self.join(texts))], self.with_maybe_extra([tool.name]), calls)

    def parallel_multiple(self) -> _Draft:
        first, second = self.rng.sample(TOOLS, 2)
        (text_a, args_a, _), (text_b, args_b, _) = self.request(first), self.request(second)
        calls = [(first.name, args_a), (second.name, args_b)]
        return _Draft([_user(self.join([text_a, text_b]))], self.with_maybe_extra([first.name, second.name]), calls)

    def multi_hop(self) -> _Draft:
        """Hop 1: the feeder calls are due. Hop 2: they ran (assistant + tool messages); the final call is due."""
        chain = self.rng.choice(CHAINS)
        values = self.sample(chain.slots)
        text = self.rng.choice(chain.requests).format(
            **{k: say(chain.slots[k], v, self.date_style) for k, v in values.items()}
        )
        feeders = [(name, {p: values[s] for p, s in params.items()}) for name, params in chain.feeders]
        outputs = [run_call(name, args) for name, args in feeders]
        given = {p: values[s] for p, s in chain.consumer_slots.items()}
        given.update({p: outputs[i][key] for p, (i, key) in chain.links.items()})
        consumer = TOOLS_BY_NAME[chain.consumer]
        final_call = (consumer.name, {p: given[p] for p in consumer.params if p in given})
        final_output = run_call(*final_call)
        trajectory = [{"name": n, "arguments": a, "output": o} for (n, a), o in zip(feeders, outputs)]
        trajectory.append({"name": final_call[0], "arguments": final_call[1], "output": final_output})
        hop = self.rng.choice((1, 2))
        messages = [_user(text)]
        if hop == 2:
            ids = [f"call_{i}" for i in range(len(feeders))]
            tool_calls = [
                {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for id_, (name, args) in zip(ids, feeders)
            ]
            messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
            messages += [
                {"role": "tool", "tool_call_id": id_, "name": name, "content": json.dumps(output)}
                for id_, (name, _), output in zip(ids, feeders, outputs)
            ]
        links = [{"param": p, "call": i, "key": key} for p, (i, key) in chain.links.items()]
        return _Draft(
            messages,
            self.with_maybe_extra(list(dict.fromkeys([name for name, _ in feeders] + [consumer.name]))),
            feeders if hop == 1 else [final_call],
            {"hop": hop, "trajectory": trajectory, "links": links},
            answer=consumer.summary.format(**final_output),
        )

    def irrelevance(self) -> _Draft:
        count = self.rng.randint(1, 3)
        if self.rng.random() < 0.3:  # a request no tool of the environment serves
            text, asked = self.rng.choice(OUT_OF_SCOPE), None
            offered = self.rng.sample([t.name for t in TOOLS], count)
        else:  # a real tool's request, with only tools from other domains offered
            target = self.rng.choice(TOOLS)
            text, _, _ = self.request(target)
            asked = target.name
            offered = self.extras(count, [target.name], other_domains=True)
        return _Draft([_user(text)], offered, [], {"unoffered_tool": asked}, answer=self.rng.choice(REFUSALS))

    def missing_info(self) -> _Draft:
        tool = self.rng.choice([t for t in TOOLS if t.request_templates(True)])
        text, _, absent = self.request(tool, missing=True)
        label = tool.params[absent].label or absent.replace("_", " ")
        offered = [tool.name] + self.extras(self.rng.randrange(2), [tool.name], other_domains=True)
        question = self.rng.choice(QUESTIONS).format(label=label)
        return _Draft([_user(text)], offered, [], {"tool": tool.name, "missing": absent}, answer=question)

    def build(self, kind: str, external_id: str, split: str) -> QuerySpec:
        self.date_style = self.rng.choice(DATE_STYLES)
        draft: _Draft = getattr(self, kind)()
        self.rng.shuffle(draft.offered)  # the right tool is not always listed first
        outputs = [run_call(name, args) for name, args in draft.calls]
        sub_answers: dict[str, list[str]] = {}
        for (name, _), output in zip(draft.calls, outputs):
            parts = ", ".join(str(output[key]) for key in TOOLS_BY_NAME[name].answer_keys)
            sub_answers.setdefault(name, []).append(parts)
        summaries = "; ".join(TOOLS_BY_NAME[n].summary.format(**o) for (n, _), o in zip(draft.calls, outputs))
        return QuerySpec(
            external_id=external_id,
            messages=draft.messages,
            tools=[self.specs[name] for name in draft.offered],
            ground_truth=[possible_answer(name, args) for name, args in draft.calls],
            kind=kind,
            reference_output=(
                render_call_list([{"name": n, "arguments": a} for n, a in draft.calls]) if draft.calls else draft.answer
            ),
            sub_answers=sub_answers,
            final_answer=draft.answer or summaries,
            metadata={"domains": list(dict.fromkeys(TOOLS_BY_NAME[n].domain for n, _ in draft.calls))} | draft.metadata,
            split=split,
        )


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def possible_answer(name: str, arguments: dict) -> dict:
    """BFCL possible-answer form: [value] per set parameter; ["", default] for an optional one left unset."""
    params = {}
    for param, spec in TOOLS_BY_NAME[name].params.items():
        if param in arguments:
            params[param] = [arguments[param]]
        elif not spec.required:
            params[param] = ["", spec.default]
        else:
            raise ValueError(f"{name}: required parameter {param!r} not set")
    return {name: params}


def kind_counts(queries: int, weights: dict[str, float]) -> dict[str, int]:
    """Queries per kind in proportion to the weights (largest remainder, ties in KINDS order)."""
    total = sum(weights.values())
    exact = {kind: queries * weight / total for kind, weight in weights.items()}
    counts = {kind: int(share) for kind, share in exact.items()}
    by_remainder = sorted(exact, key=lambda kind: counts[kind] - exact[kind])  # stable: ties keep KINDS order
    for kind in by_remainder[: queries - sum(counts.values())]:
        counts[kind] += 1
    return counts


def generate_environment(config: EnvironmentConfig) -> Environment:
    """Tools with implementations, and `config.queries` queries over them, reproducibly from the seed."""
    rng = random.Random(config.seed)
    specs = {tool.name: tool_spec(tool) for tool in TOOLS}
    kinds = [kind for kind, count in kind_counts(config.queries, config.kind_weights).items() for _ in range(count)]
    rng.shuffle(kinds)
    eval_indices = set(rng.sample(range(config.queries), round(config.queries * config.eval_fraction)))
    builder = _QueryBuilder(rng, specs)
    queries = [
        builder.build(kind, f"env-{config.seed}-{index:06d}", "eval" if index in eval_indices else "train")
        for index, kind in enumerate(kinds)
    ]
    return Environment(tools=list(specs.values()), queries=queries)
