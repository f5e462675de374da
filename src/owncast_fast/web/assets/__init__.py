"""Files served as they are: the default logo."""
