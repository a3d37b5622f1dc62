"""What the one audio decode measures: features, rhythm, key, sections, content class, loudness, QC, integrity,
delivery profiles and the spectrogram.
"""
