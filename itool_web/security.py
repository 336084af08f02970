"""Response headers that limit what a page can do if something hostile gets into it: a Content-Security-Policy
and a Permissions-Policy (Django's own middleware sets X-Frame-Options, X-Content-Type-Options, Referrer-Policy
and Cross-Origin-Opener-Policy from settings)."""

from __future__ import annotations

from django.conf import settings


class SecurityHeadersMiddleware:
    """CONTENT_SECURITY_POLICY and PERMISSIONS_POLICY on every response that does not set its own (empty = off)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        for header, value in (
            ("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY),
            ("Permissions-Policy", settings.PERMISSIONS_POLICY),
        ):
            if value and header not in response.headers:
                response.headers[header] = value
        return response
