"""The crisis centre's relay receiver (``havel relay receive``): see :mod:`.receiver`."""
