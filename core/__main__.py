"""``python -m havel`` runs the command line."""

from havel.cli import main

main()
