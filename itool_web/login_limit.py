"""Password guesses on the login pages (the site's and the admin's), limited per client address with the API
token endpoint's throttle: one rate (API_AUTH_THROTTLE_RATE) and one count for all three."""

from __future__ import annotations

import math
from functools import wraps

from django.shortcuts import render

from apps.api.throttling import PasswordCheckThrottle


def password_checks_limited(view):
    """Wrap a login view: a POST over the rate gets 429 with `Retry-After` and no password check; a POST that
    logs someone in (the login views answer it with a redirect) is not counted."""

    @wraps(view)
    def limited(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        throttle = PasswordCheckThrottle()
        if not throttle.allow_request(request, None):
            wait = math.ceil(throttle.wait() or 1)
            response = render(
                request,
                "error.html",
                {"status": 429, "message": f"Too many login attempts from your address: try again in {wait} seconds."},
                status=429,
            )
            response["Retry-After"] = str(wait)
            return response
        response = view(request, *args, **kwargs)
        if response.status_code == 302 and request.user.is_authenticated:  # a failed login re-renders the form
            throttle.refund()
        return response

    return limited
