"""The provider's database: SQLAlchemy 2.0 models, engine and sessions, repositories."""
