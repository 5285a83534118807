"""Activities: the @activity.defn classes, the workflows' only way to touch PostgreSQL and the outside world."""
