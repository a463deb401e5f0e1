"""``havel gateway ...`` (:mod:`.gateway`) and ``havel device ...`` (:mod:`.device`).

Every command takes ``--config FILE`` (the daemon's TOML) or ``--data-dir DIR`` (defaults for the rest),
see :mod:`.options`. Keys are never printed unless ``--show-keys`` is given.

Commands that only look (``gateway status``, ``gateway outbox show``, ``gateway backup``) open the database
read-only: they never change it, whichever config they were given. They find a running daemon through the
lock it holds on the data directory (:mod:`havel.gateway.runlock`), not through the config's HTTP port alone.
"""
