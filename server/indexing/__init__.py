"""Getting media into the store: one item (``indexer``), or a whole folder (``folder``,
``sidecars``, ``pipeline``, ``sinks`` and ``report``)."""
