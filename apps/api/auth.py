"""Tokens: POST a username and password, get the key to send as `Authorization: Token <key>`."""

from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import FormParser, MultiPartParser

from .parsers import JSONParser
from .throttling import PasswordCheckThrottle


class TokenObtainView(ObtainAuthToken):
    """The user's token (created on first request; an admin can also issue or revoke it in the admin).
    Password guesses are limited per client address (API_AUTH_THROTTLE_RATE), counted with the login pages'."""

    authentication_classes = []  # a password is the credential here
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    throttle_classes = [PasswordCheckThrottle]

    def get_throttles(self):
        self.checked_throttles = super().get_throttles()  # kept: a right password gives its count back
        return self.checked_throttles

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)  # a wrong password raises (400)
        for throttle in getattr(self, "checked_throttles", []):
            throttle.refund()
        return response
