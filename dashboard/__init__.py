"""The supervisors' dashboard: server-rendered pages, their charts and templates, mounted by the API app."""
