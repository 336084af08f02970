"""Request rates: per user (each user has one token) for the API, per client address for token requests.

Rates are read from settings on every request (API_THROTTLE_RATE, API_AUTH_THROTTLE_RATE; None = no limit),
so tests and deployments can change them; counters live in the default cache (CACHE_URL). A request over the
rate gets 429 with `Retry-After`.
"""
from django.conf import settings
from rest_framework import throttling


class UserRateThrottle(throttling.UserRateThrottle):
    """API_THROTTLE_RATE (default 6000/hour) per authenticated user, or per address for anonymous requests."""

    def get_rate(self):
        return settings.API_THROTTLE_RATE


class TokenObtainThrottle(throttling.SimpleRateThrottle):
    """API_AUTH_THROTTLE_RATE (default 30/minute) password checks per client address: no brute force."""

    scope = "token"

    def get_rate(self):
        return settings.API_AUTH_THROTTLE_RATE

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
