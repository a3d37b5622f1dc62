"""The stages of a media job and their backends. Stage modules import no storage, catalog or Celery code."""
