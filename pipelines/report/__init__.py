"""The HTML quality report and its charts."""
