"""Transcript search: an inverted index kept when calls end (``index``), and the
``search`` consumer group that keeps it (``worker``)."""
