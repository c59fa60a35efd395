"""A Redshift stand-in: a Redshift wire-protocol front on PostgreSQL 15 and the moto S3 stand-in (tests only)."""
