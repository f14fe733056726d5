"""The ForgeAI language server (pygls)."""
