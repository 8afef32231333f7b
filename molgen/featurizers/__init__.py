"""Featurizers beyond token ids: molecule <-> PyG graph (``molgen.featurizers.graph``)."""
