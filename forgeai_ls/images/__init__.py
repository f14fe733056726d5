"""Container images of plugins for the docker backend, built offline from the host's packages."""
