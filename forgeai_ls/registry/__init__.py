"""The remote plugin registry: HTTP server, storage and client (design.md section 3.5)."""
