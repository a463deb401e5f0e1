# boot.py: runs first at every reset. The valve output goes inactive (closed) before anything else;
# main.py then checks the configuration and starts the node (and releases apps/bootvalve.py).
try:
    import machine
    from apps import bootvalve

    bootvalve.valve_closed_early(machine)
    del bootvalve
except ImportError:
    pass  # not on a board
