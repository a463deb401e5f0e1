# boot.py: runs first at every reset. The valve output goes inactive (closed) before anything else;
# main.py then checks the configuration and starts the node.
try:
    import machine
    from apps.board import valve_closed_early

    valve_closed_early(machine)
except ImportError:
    pass  # not on a board
