"""The web gallery on the operators' HTTP port: search, "more like this", a user's page, status."""
