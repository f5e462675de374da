"""The web layer: Robyn app, one router module per API area, auth, responses."""
