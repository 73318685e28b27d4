"""Security of a federation: its PKI (a CA, node certificates with roles, revocation) and
signatures over bytes with node keys."""

__all__: list[str] = []
