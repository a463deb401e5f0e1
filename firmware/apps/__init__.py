"""Node applications: the common loop (node.py) and one module per kind of node."""

APPS = ("air", "water", "temperature", "cooling")


def app_module(name):
    """The module of app `name`, imported on demand: a node loads (and bundles) only its own app."""
    if name not in APPS:
        raise ValueError("unknown app %r" % (name,))
    pkg = __import__("apps." + name)
    return getattr(pkg, name)
