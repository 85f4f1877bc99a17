"""The archive pipeline: list CDRs into the state, transfer recordings, write the manifest."""
