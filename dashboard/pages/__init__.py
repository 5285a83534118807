"""One router per dashboard page, composed by `dashboard.routes`."""
