"""The official executor plugins, shipped as package data (one folder each) with their lock."""
