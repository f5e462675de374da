"""Configuration: start-up options (file, environment, flags) and Owncast's runtime settings."""
