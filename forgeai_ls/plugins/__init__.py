"""Language executors: how each language is compiled and run in the sandbox."""
