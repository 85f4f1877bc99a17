"""Retrieval from the storage alone: the id index, get, verify, search, holds, audit."""
