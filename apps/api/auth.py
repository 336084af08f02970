"""Tokens: POST a username and password, get the key to send as `Authorization: Token <key>`."""
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import FormParser, MultiPartParser

from .parsers import JSONParser
from .throttling import TokenObtainThrottle


class TokenObtainView(ObtainAuthToken):
    """The user's token (created on first request; an admin can also issue or revoke it in the admin).
    Password guesses are limited per client address (API_AUTH_THROTTLE_RATE)."""

    authentication_classes = []  # a password is the credential here
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    throttle_classes = [TokenObtainThrottle]
