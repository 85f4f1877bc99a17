"""The manifest: its layout, its lines, its chain, and the batch writer.

- :mod:`~archiver.manifest.layout`: where manifest objects and chain links live (pure);
- :mod:`~archiver.manifest.entry`: :class:`ManifestEntry`, one line (pure);
- :mod:`~archiver.manifest.chain`: the links and heads that chain a writer's objects (pure);
- :mod:`~archiver.manifest.reader`: reading manifest objects back from the storage;
- :mod:`~archiver.manifest.writer`: writing the batches fixed in the state store.

Nothing is imported here, so the pure modules stay importable from the state
store without pulling in the writer.
"""
