"""Sound: a track decoded to mono PCM (decode), its onset envelope, tempo and beats (analysis), what it does to
a walk (sync: keyframes on beats; react: zoom pulse and speed), and the soundtrack muxed into an MP4 (mux)."""
