"""Report templates (HTML). Installed as a package so importlib.resources finds them."""
