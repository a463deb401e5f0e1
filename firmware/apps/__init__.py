"""Node applications: the common loop (node.py) and one module per kind of node."""

# the one list of node kinds on the firmware: bundle.json's "apps" and the host's node kinds
# (havel.codecs.payload.KIND_NAMES) are held to it by tests/firmware/test_bundle.py
APPS = ("air", "water", "temperature", "cooling", "soil")


def app_module(name):
    """The module of app `name`, imported on demand: a node loads (and bundles) only its own app."""
    if name not in APPS:
        raise ValueError("unknown app %r" % (name,))
    pkg = __import__("apps." + name)
    return getattr(pkg, name)
