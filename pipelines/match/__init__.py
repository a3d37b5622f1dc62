"""Content fingerprints and the match index: Chromaprint items, spectral-peak landmarks, the index and the clip
search. Pure numpy; no catalog import.
"""
