"""The ``forgeai`` command: parse, call the core, print."""
