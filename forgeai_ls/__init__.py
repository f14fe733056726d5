"""ForgeAI: run untrusted code from the editor or terminal in a sandbox."""

__version__ = "0.1.0"
