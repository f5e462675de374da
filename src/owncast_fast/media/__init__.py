"""Media units, codec parameters, the ingest hub and (later) segmenting and transcoding."""
