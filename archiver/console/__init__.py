"""The auditor's console: search, listen, download, export and hold in a browser.

``archiver console`` serves it over the archive's own storage (S3 or a
directory); a local SQLite index of the manifests (:mod:`.index`) makes
searches fast and is rebuilt from the storage at will. Modules:

- :mod:`.source`: the one place that reads the manifest's format;
- :mod:`.index`: the SQLite index of manifest lines and audit records;
- :mod:`.auth`: accounts, roles, sessions, sign-in limits;
- :mod:`.app`: the web application, its security middlewares, the server;
- :mod:`.views`, :mod:`.media`, :mod:`.export`: the pages, listening and
  downloading, the ZIP export;
- :mod:`.words`: the pages' words in Vietnamese and English.

Nothing is imported here: ``get`` and ``hold`` use :mod:`.index` and
:mod:`.db` alone, and must not pay for the web application (aiohttp's server,
Jinja2) on every command's start.
"""
