"""The HTTP API: the app factory, its typed dependencies, error shapes, request models, one router per resource, and the codec server."""
