"""The manifest: its lines, its chain, and the batch writer.

Where manifest objects and chain links live is :mod:`archiver.storage.layout`
(a level below, so the storage's retention rules can name them too).

- :mod:`~archiver.manifest.entry`: :class:`ManifestEntry`, one line (pure);
- :mod:`~archiver.manifest.chain`: the links and heads that chain a writer's objects (pure);
- :mod:`~archiver.manifest.reader`: reading manifest objects back from the storage;
- :mod:`~archiver.manifest.writer`: writing the batches fixed in the state store.

Nothing is imported here, so the pure modules stay importable from the state
store without pulling in the writer; the writer asks the state only for the
narrow :class:`~archiver.manifest.writer.BatchQueue` it uses.
"""
