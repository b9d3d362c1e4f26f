"""The Partner Procurement API v1, emulated: routes, responses, models (state machine), errors."""
