"""One router per resource; :mod:`api.app` includes them all."""
