"""The PostgreSQL read model: the connection pool and migrations, referral and oversight queries, the access log and retention."""
