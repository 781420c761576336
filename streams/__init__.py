"""The Faust app and everything around it, by role: ``worker``, ``lab``, ``control``, ``ops``."""
