"""The kit bench: a local web page for ``havel kit build`` (``havel kit serve``)."""
