"""The generated tools' real implementations (FTRL stage 5, local deployment).

Each function is stored as a tool's `implementation` (its source, via `inspect.getsource`) and run in the
sandbox, so each is self-contained: imports inside the body, stdlib only, no I/O, and deterministic —
data comes from small literal tables or from a CRC32 of the inputs. Outputs are JSON-able dicts of ASCII
values; a bad argument gives `{"error": ...}` rather than an exception.
"""


def get_current_weather(city: str, unit: str = "celsius") -> dict:
    """Current weather in a city, simulated from its name."""
    import zlib

    if unit not in ("celsius", "fahrenheit"):
        return {"error": f"unknown unit {unit!r}; use celsius or fahrenheit"}
    code = zlib.crc32(city.strip().lower().encode())
    celsius = code % 36 - 5
    condition = "snowy" if celsius < 1 else ("sunny", "cloudy", "rainy", "windy", "partly cloudy")[code // 36 % 5]
    temperature = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
    return {
        "city": city,
        "temperature": temperature,
        "unit": unit,
        "condition": condition,
        "humidity": code // 180 % 60 + 30,
    }


def get_weather_forecast(city: str, date: str, unit: str = "celsius") -> dict:
    """Forecast high, low and conditions for a city on a date, simulated from both."""
    import datetime
    import zlib

    if unit not in ("celsius", "fahrenheit"):
        return {"error": f"unknown unit {unit!r}; use celsius or fahrenheit"}
    try:
        day = datetime.date.fromisoformat(date)
    except ValueError:
        return {"error": f"date must be YYYY-MM-DD, got {date!r}"}
    code = zlib.crc32(f"{city.strip().lower()}|{day.isoformat()}".encode())
    high = code % 34 - 2
    low = high - code // 34 % 9 - 2
    condition = "snow" if high < 2 else ("sunshine", "clouds", "showers", "thunderstorms", "wind")[code // 306 % 5]
    if unit == "fahrenheit":
        high, low = round(high * 9 / 5 + 32), round(low * 9 / 5 + 32)
    return {"city": city, "date": day.isoformat(), "high": high, "low": low, "unit": unit, "condition": condition}


def lookup_ticker(company: str) -> dict:
    """The stock ticker symbol of a listed company."""
    tickers = {
        "apple": "AAPL",
        "microsoft": "MSFT",
        "alphabet": "GOOGL",
        "google": "GOOGL",
        "amazon": "AMZN",
        "tesla": "TSLA",
        "nvidia": "NVDA",
        "netflix": "NFLX",
        "intel": "INTC",
        "adobe": "ADBE",
        "nike": "NKE",
        "coca-cola": "KO",
        "disney": "DIS",
        "boeing": "BA",
        "ibm": "IBM",
        "oracle": "ORCL",
        "salesforce": "CRM",
    }
    ticker = tickers.get(company.strip().lower())
    if ticker is None:
        return {"error": f"no listed company named {company!r}"}
    exchange = "NYSE" if ticker in ("KO", "DIS", "BA", "IBM", "NKE", "CRM") else "NASDAQ"
    return {"company": company, "ticker": ticker, "exchange": exchange}


def get_stock_price(ticker: str, date: str) -> dict:
    """Closing price of a stock on a date (simulated)."""
    import datetime
    import zlib

    try:
        day = datetime.date.fromisoformat(date)
    except ValueError:
        return {"error": f"date must be YYYY-MM-DD, got {date!r}"}
    symbol = ticker.strip().upper()
    if not symbol.isalpha() or len(symbol) > 5:
        return {"error": f"not a ticker symbol: {ticker!r}"}
    base = zlib.crc32(symbol.encode()) % 40000 / 100 + 20
    drift = zlib.crc32(f"{symbol}|{day.isoformat()}".encode()) % 2001 / 100 - 10  # within ±10%
    return {"ticker": symbol, "date": day.isoformat(), "close": round(base * (1 + drift / 100), 2), "currency": "USD"}


def convert_currency(amount: float, from_currency: str, to_currency: str) -> dict:
    """Convert an amount between currencies at a fixed reference rate."""
    per_usd = {
        "USD": 1.0,
        "EUR": 0.92,
        "GBP": 0.79,
        "JPY": 151.2,
        "CHF": 0.88,
        "CAD": 1.36,
        "AUD": 1.52,
        "INR": 83.2,
        "CNY": 7.23,
        "MXN": 17.1,
    }
    source, target = from_currency.strip().upper(), to_currency.strip().upper()
    for code in (source, target):
        if code not in per_usd:
            return {"error": f"unsupported currency {code!r}"}
    rate = round(per_usd[target] / per_usd[source], 4)
    return {
        "amount": amount,
        "from_currency": source,
        "to_currency": target,
        "rate": rate,
        "converted": round(amount * per_usd[target] / per_usd[source], 2),
    }


def get_exchange_rate(base: str, target: str) -> dict:
    """The reference exchange rate: how much of `target` one unit of `base` buys."""
    per_usd = {
        "USD": 1.0,
        "EUR": 0.92,
        "GBP": 0.79,
        "JPY": 151.2,
        "CHF": 0.88,
        "CAD": 1.36,
        "AUD": 1.52,
        "INR": 83.2,
        "CNY": 7.23,
        "MXN": 17.1,
    }
    base, target = base.strip().upper(), target.strip().upper()
    for code in (base, target):
        if code not in per_usd:
            return {"error": f"unsupported currency {code!r}"}
    return {"base": base, "target": target, "rate": round(per_usd[target] / per_usd[base], 4)}


def get_airport_code(city: str) -> dict:
    """The IATA code of a city's main airport."""
    codes = {
        "paris": "CDG",
        "london": "LHR",
        "tokyo": "HND",
        "new york": "JFK",
        "berlin": "BER",
        "madrid": "MAD",
        "rome": "FCO",
        "sydney": "SYD",
        "toronto": "YYZ",
        "cairo": "CAI",
        "mumbai": "BOM",
        "seoul": "ICN",
        "lisbon": "LIS",
        "dublin": "DUB",
        "chicago": "ORD",
        "singapore": "SIN",
        "mexico city": "MEX",
        "buenos aires": "EZE",
        "nairobi": "NBO",
        "oslo": "OSL",
        "bangkok": "BKK",
        "ottawa": "YOW",
        "canberra": "CBR",
        "brasilia": "BSB",
        "new delhi": "DEL",
    }
    code = codes.get(city.strip().lower())
    if code is None:
        return {"error": f"no airport known for {city!r}"}
    return {"city": city, "airport_code": code}


def search_flights(
    origin: str, destination: str, date: str, cabin_class: str = "economy", nonstop_only: bool = False
) -> dict:
    """Flights between two airports on a date (simulated), with the cheapest one."""
    import datetime
    import zlib

    classes = {"economy": 1.0, "premium_economy": 1.6, "business": 3.2, "first": 5.5}
    if cabin_class not in classes:
        return {"error": f"unknown cabin class {cabin_class!r}"}
    try:
        day = datetime.date.fromisoformat(date)
    except ValueError:
        return {"error": f"date must be YYYY-MM-DD, got {date!r}"}
    origin, destination = origin.strip().upper(), destination.strip().upper()
    if origin == destination or len(origin) != 3 or len(destination) != 3:
        return {"error": "origin and destination must be two different 3-letter airport codes"}
    flights = []
    for i in range(3):
        code = zlib.crc32(f"{origin}|{destination}|{day.isoformat()}|{i}".encode())
        stops = 0 if nonstop_only else code % 3 // 2
        flights.append(
            {
                "flight": ("AF", "BA", "LH", "UA", "DL", "NH", "EK", "IB")[code % 8] + str(100 + code // 8 % 900),
                "departure": f"{6 + code // 7200 % 16:02d}:{code // 60 % 4 * 15:02d}",
                "stops": stops,
                "price": round((180 + code // 97 % 900) * classes[cabin_class] * (0.85 if stops else 1.0)),
            }
        )
    cheapest = min(flights, key=lambda f: (f["price"], f["flight"]))
    return {
        "origin": origin,
        "destination": destination,
        "date": day.isoformat(),
        "cabin_class": cabin_class,
        "flights": flights,
        "cheapest_flight": cheapest["flight"],
        "cheapest_price": cheapest["price"],
    }


def find_restaurant(city: str, cuisine: str, max_price: int = 4) -> dict:
    """The best-rated restaurant of a cuisine in a city, within a price level (1 cheap … 4 expensive)."""
    import zlib

    names = {
        "italian": ("Trattoria", "Osteria"),
        "japanese": ("Sakura", "Kaiseki"),
        "mexican": ("Cantina", "Taqueria"),
        "indian": ("Masala", "Tandoor"),
        "french": ("Bistro", "Brasserie"),
        "thai": ("Baan", "Siam"),
        "chinese": ("Jade", "Dragon"),
    }
    if cuisine not in names:
        return {"error": f"unknown cuisine {cuisine!r}"}
    if not 1 <= max_price <= 4:
        return {"error": "max_price must be between 1 and 4"}
    code = zlib.crc32(f"{city.strip().lower()}|{cuisine}|{max_price}".encode())
    name = f"{names[cuisine][code % 2]} {('Luna', 'Verde', 'Central', 'Golden', 'Corner', 'Garden')[code // 2 % 6]}"
    return {
        "restaurant_id": f"R-{1000 + code // 12 % 9000}",
        "name": name,
        "city": city,
        "cuisine": cuisine,
        "rating": round(3.8 + code // 108000 % 12 / 10, 1),
        "price_level": 1 + code // 7 % max_price,
    }


def book_table(restaurant_id: str, date: str, time: str, party_size: int) -> dict:
    """Reserve a table; returns a confirmation code."""
    import datetime
    import zlib

    try:
        day = datetime.date.fromisoformat(date)
        at = datetime.time.fromisoformat(time)
    except ValueError:
        return {"error": "date must be YYYY-MM-DD and time HH:MM"}
    if not 1 <= party_size <= 20:
        return {"error": "party_size must be between 1 and 20"}
    code = zlib.crc32(f"{restaurant_id}|{day.isoformat()}|{at.strftime('%H:%M')}|{party_size}".encode())
    return {
        "confirmation": f"BK-{code % 0xFFFFFF:06X}",
        "restaurant_id": restaurant_id,
        "date": day.isoformat(),
        "time": at.strftime("%H:%M"),
        "party_size": party_size,
        "status": "confirmed",
    }


def get_user_id(email: str) -> dict:
    """The customer id registered under an email address."""
    import zlib

    email = email.strip().lower()
    if email.count("@") != 1 or "." not in email.split("@")[1]:
        return {"error": f"not an email address: {email!r}"}
    return {"email": email, "user_id": f"U{100000 + zlib.crc32(email.encode()) % 900000}"}


def get_order_status(user_id: str, order_id: str) -> dict:
    """Where a customer's order is: status, carrier and estimated delivery date."""
    import datetime
    import zlib

    code = zlib.crc32(f"{user_id.strip().upper()}|{order_id.strip().upper()}".encode())
    status = ("processing", "shipped", "in transit", "out for delivery", "delivered")[code % 5]
    delivery = datetime.date(2025, 1, 1) + datetime.timedelta(days=code // 5 % 365)
    return {
        "order_id": order_id.strip().upper(),
        "user_id": user_id.strip().upper(),
        "status": status,
        "carrier": ("DHL", "UPS", "FedEx", "USPS")[code // 1825 % 4],
        "estimated_delivery": delivery.isoformat(),
    }


def create_event(title: str, date: str, start_time: str, duration_minutes: int = 60) -> dict:
    """Add an event to the calendar; returns its id and end time."""
    import datetime
    import zlib

    try:
        start = datetime.datetime.fromisoformat(f"{date}T{start_time}")
    except ValueError:
        return {"error": "date must be YYYY-MM-DD and start_time HH:MM"}
    if not 1 <= duration_minutes <= 24 * 60:
        return {"error": "duration_minutes must be between 1 and 1440"}
    end = start + datetime.timedelta(minutes=duration_minutes)
    code = zlib.crc32(f"{title.strip().lower()}|{start.isoformat()}".encode())
    return {
        "event_id": f"EV-{code % 100000:05d}",
        "title": title,
        "date": start.date().isoformat(),
        "start": start.strftime("%H:%M"),
        "end": end.strftime("%H:%M"),
    }


def get_day_of_week(date: str) -> dict:
    """The weekday of a date."""
    import datetime

    try:
        day = datetime.date.fromisoformat(date)
    except ValueError:
        return {"error": f"date must be YYYY-MM-DD, got {date!r}"}
    return {"date": day.isoformat(), "day_of_week": day.strftime("%A")}


def days_between(start_date: str, end_date: str, inclusive: bool = False) -> dict:
    """Number of days from one date to another (negative if the end is earlier)."""
    import datetime

    try:
        start, end = datetime.date.fromisoformat(start_date), datetime.date.fromisoformat(end_date)
    except ValueError:
        return {"error": "dates must be YYYY-MM-DD"}
    days = (end - start).days
    if inclusive:
        days += 1 if days >= 0 else -1
    return {"start_date": start.isoformat(), "end_date": end.isoformat(), "days": days}


def convert_length(value: float, from_unit: str, to_unit: str) -> dict:
    """Convert a length between metric and imperial units."""
    meters = {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0, "in": 0.0254, "ft": 0.3048, "yd": 0.9144, "mi": 1609.344}
    for unit in (from_unit, to_unit):
        if unit not in meters:
            return {"error": f"unknown unit {unit!r}"}
    return {
        "value": value,
        "from_unit": from_unit,
        "to_unit": to_unit,
        "result": round(value * meters[from_unit] / meters[to_unit], 4),
    }


def convert_temperature(value: float, from_unit: str, to_unit: str) -> dict:
    """Convert a temperature between celsius, fahrenheit and kelvin."""
    to_kelvin = {
        "celsius": lambda v: v + 273.15,
        "fahrenheit": lambda v: (v - 32) * 5 / 9 + 273.15,
        "kelvin": lambda v: v,
    }
    from_kelvin = {
        "celsius": lambda k: k - 273.15,
        "fahrenheit": lambda k: (k - 273.15) * 9 / 5 + 32,
        "kelvin": lambda k: k,
    }
    for unit in (from_unit, to_unit):
        if unit not in to_kelvin:
            return {"error": f"unknown unit {unit!r}"}
    return {
        "value": value,
        "from_unit": from_unit,
        "to_unit": to_unit,
        "result": round(from_kelvin[to_unit](to_kelvin[from_unit](value)), 2),
    }


def calculate_bmi(weight_kg: float, height_cm: float) -> dict:
    """Body-mass index and its WHO category."""
    if weight_kg <= 0 or height_cm <= 0:
        return {"error": "weight and height must be positive"}
    bmi = round(weight_kg / (height_cm / 100) ** 2, 1)
    category = "underweight" if bmi < 18.5 else "normal weight" if bmi < 25 else "overweight" if bmi < 30 else "obese"
    return {"bmi": bmi, "category": category}


def calculate_loan_payment(principal: float, annual_rate: float, years: int) -> dict:
    """Monthly payment of a fixed-rate loan, and the total paid over its life."""
    if principal <= 0 or years <= 0 or annual_rate < 0:
        return {"error": "principal and years must be positive, the rate not negative"}
    months, monthly_rate = years * 12, annual_rate / 100 / 12
    if monthly_rate == 0:
        payment = principal / months
    else:
        payment = principal * monthly_rate / (1 - (1 + monthly_rate) ** -months)
    return {
        "monthly_payment": round(payment, 2),
        "total_paid": round(payment * months, 2),
        "total_interest": round(payment * months - principal, 2),
    }


def calculate_tip(bill_amount: float, tip_percent: float = 15.0, people: int = 1) -> dict:
    """The tip on a bill, the total, and each person's share."""
    if bill_amount < 0 or tip_percent < 0 or people < 1:
        return {"error": "amounts must not be negative and people at least 1"}
    tip = round(bill_amount * tip_percent / 100, 2)
    total = round(bill_amount + tip, 2)
    return {"tip": tip, "total": total, "per_person": round(total / people, 2)}


def get_country_capital(country: str) -> dict:
    """The capital city of a country."""
    capitals = {
        "france": "Paris",
        "japan": "Tokyo",
        "germany": "Berlin",
        "spain": "Madrid",
        "italy": "Rome",
        "canada": "Ottawa",
        "egypt": "Cairo",
        "india": "New Delhi",
        "brazil": "Brasilia",
        "kenya": "Nairobi",
        "norway": "Oslo",
        "portugal": "Lisbon",
        "ireland": "Dublin",
        "mexico": "Mexico City",
        "argentina": "Buenos Aires",
        "australia": "Canberra",
        "south korea": "Seoul",
        "thailand": "Bangkok",
        "united kingdom": "London",
    }
    capital = capitals.get(country.strip().lower())
    if capital is None:
        return {"error": f"unknown country {country!r}"}
    return {"country": country, "capital": capital}


def get_population(place: str, year: int = 2025) -> dict:
    """Population of a country or city in a year (2000–2025, interpolated)."""
    import zlib

    millions_2025 = {
        "france": 66.6,
        "japan": 123.3,
        "germany": 84.1,
        "spain": 48.4,
        "italy": 58.9,
        "canada": 40.1,
        "egypt": 116.5,
        "india": 1463.9,
        "brazil": 212.8,
        "kenya": 57.5,
        "norway": 5.6,
        "portugal": 10.4,
        "ireland": 5.3,
        "mexico": 131.9,
        "argentina": 45.9,
        "australia": 26.9,
        "south korea": 51.7,
        "thailand": 71.6,
        "united kingdom": 69.6,
    }
    if not 2000 <= year <= 2025:
        return {"error": "year must be between 2000 and 2025"}
    key = place.strip().lower()
    base = millions_2025.get(key, (zlib.crc32(key.encode()) % 150 + 5) / 10)  # cities: 0.5–15.4 million
    growth = 1 + (zlib.crc32(key.encode()) % 15) / 1000  # 0–1.4% a year
    return {"place": place, "year": year, "population": round(base * 1_000_000 / growth ** (2025 - year))}
