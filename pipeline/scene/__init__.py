"""What a render job shows over time, independent of how it is rendered: the timeline (frame rate, length,
keyframe times and holds), even pacing, and the palette. pipeline.jobs builds a render from these."""
