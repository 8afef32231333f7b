"""Featurizers beyond token ids: molecule <-> PyG graph, and the ``graph`` representation
(:class:`molgen.featurizers.graph.GraphRepresentation`)."""
