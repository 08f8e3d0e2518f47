"""OAuth2 for every layer: the client-credentials authorization server, its signing keys and
client registry, and the verification every endpoint applies to access tokens."""
