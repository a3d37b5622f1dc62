"""The ladder and what is measured on it: choosing rungs, the transcode, packaging, quality, scenes and thumbnails."""
