"""The layout every HTML page shares, the dashboard's and the audit report's: the document, its header and one stylesheet."""

from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
