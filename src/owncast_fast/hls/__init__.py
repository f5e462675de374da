"""HLS output: playlist models, live state, LL-HLS delivery and where the files are stored."""
