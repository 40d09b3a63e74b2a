"""gomirror-proxy: an Athens-compatible GOPROXY node."""

__version__ = "0.1.0"
