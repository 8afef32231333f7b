"""Generators behind one interface (:class:`~molgen.models.base.GenerativeModel`)."""
