"""One router per resource of the HTTP API, composed by `api.app`."""
