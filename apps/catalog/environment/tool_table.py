"""The generated environment's tools, one per sub-scenario of `scenarios.DOMAINS`: each one's document, the
requests that call it and what its output answers (stage 2 of the environment generator)."""

from __future__ import annotations

from .scenarios import CUISINES, CURRENCIES, LENGTH_UNITS, TEMPERATURE_UNITS
from .tools import Param, Tool

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
