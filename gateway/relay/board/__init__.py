"""The crisis-centre board: a read-only local web page of the relay receiver (``havel relay receive --web``).

Built on the shared local web part :mod:`havel.web`; every asset ships in this package (``static/``).
"""

from havel.gateway.relay.board.app import Board, alarm_rules

__all__ = ["Board", "alarm_rules"]
