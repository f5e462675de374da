# The HLS muxers: fMP4/CMAF (fmp4.pxi) and MPEG-TS (mpegts.pxi), one compiled module.
include "fmp4.pxi"
include "mpegts.pxi"
