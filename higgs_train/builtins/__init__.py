"""The built-in stand-ins for a hub checkpoint and a speech dataset (`builtin:tiny`, `builtin:demo`), made offline."""
