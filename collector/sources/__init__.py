"""One module per evidence source, each behind :class:`collector.evidence.Source`."""
