"""Widgets of the Textual app: a form built from a config dataclass, charts, a progress panel,
and text fitting (`text`, free of Textual: the CLI's tables use it too)."""
