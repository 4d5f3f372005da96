"""`waveguard`: the operator CLI."""
