"""The version of Kiln (a leaf module: services read it without importing the app package)."""
__version__ = "0.1.0"
