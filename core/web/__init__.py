"""A small shared web part for Havel's local pages (the kit bench, and pages built like it).

Served by Havel itself with the standard library's HTTP server: every asset ships in the package and is
read through importlib.resources, so a page works with no internet. See :mod:`havel.web.server`.
"""

from havel.web.server import EventHub, HttpError, LocalApp, Request, Response, serve

__all__ = ["EventHub", "HttpError", "LocalApp", "Request", "Response", "serve"]
