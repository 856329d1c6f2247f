"""Widgets of our own: the throughput chart, the text progress cell, modals."""
