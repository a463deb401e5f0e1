"""The valve output driven closed first thing after a reset (boot.py, and apps/board.py's run()
again): boot code, loaded for the call and released after, so a running node does not keep it."""


def valve_closed_early(m, board_path="board.json", config_path="config.json"):
    """boot.py calls this first: drive the valve output inactive before anything else runs.
    Returns the pin and its active level, or (None, 1) when board.json cannot say which pin or
    config.json says this node has no valve (another app: the pin is left alone)."""
    import json

    try:
        with open(config_path) as f:
            app = json.load(f).get("app")
    except (OSError, ValueError, AttributeError):
        app = None  # unreadable config: assume a valve may be there
    if app is not None and app != "cooling":
        return None, 1
    try:
        with open(board_path) as f:
            v = json.load(f)["valve"]
        return m.Pin(v["pin"], m.Pin.OUT, value=1 - v["active"]), v["active"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, 1
