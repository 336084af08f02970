"""Request rates: per user (each user has one token) for the API, per client address for password checks.

Rates are read from settings on every request (API_THROTTLE_RATE, API_AUTH_THROTTLE_RATE; None = no limit),
so tests and deployments can change them; counters live in the default cache (CACHE_URL). A request over the
rate gets 429 with `Retry-After`.

The client address is REMOTE_ADDR unless NUM_PROXIES says how many proxies in front of the app append to
`X-Forwarded-For` (DRF's rule: then the address that many entries from the end). With NUM_PROXIES unset DRF
would key on the whole header, which the client writes: a new header per request reset every count.
"""

from django.conf import settings
from rest_framework import throttling


class UserRateThrottle(throttling.UserRateThrottle):
    """API_THROTTLE_RATE (default 6000/hour) per authenticated user, or per address for anonymous requests."""

    def get_rate(self):
        return settings.API_THROTTLE_RATE


class PasswordCheckThrottle(throttling.SimpleRateThrottle):
    """API_AUTH_THROTTLE_RATE (default 30/minute) password checks per client address, one count shared by the
    token endpoint, the login page and the admin's login: no brute force, and nothing gained by switching.

    A check is counted when it is made (so parallel guesses cannot slip past while passwords are hashed) and
    given back when the password was right (`refund`): people logging in never use up their address's count."""

    scope = "password"

    def get_rate(self):
        return settings.API_AUTH_THROTTLE_RATE

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def refund(self) -> None:
        """Uncount this request's check (after `allow_request` let it through and the password was right)."""
        if self.rate is None or not hasattr(self, "key"):
            return
        history = self.cache.get(self.key, [])
        if self.now in history:
            history.remove(self.now)
            self.cache.set(self.key, history, self.duration)
