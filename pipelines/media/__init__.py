"""Reading masters, confined: the one subprocess runner and its sandbox, the probe, the audio decode, tags, cover
art and ISO BMFF boxes.
"""
