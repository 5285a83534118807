"""Activities: the workflows' only way to touch PostgreSQL and the outside world."""
