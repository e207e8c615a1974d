"""Who is calling: admin keys, the Authorization header, and user tokens.

- :mod:`.admin_key`: the instance secret and the admin key derived from it;
- :mod:`.header`: ``Authorization: Convex <key>[:<identity>]`` / ``Bearer <jwt>``;
- :mod:`.providers`: ``auth_config.py``'s providers (OIDC, custom JWT);
- :mod:`.jwks`: providers' public keys, fetched and cached;
- :mod:`.jwt`: verifying a user token against the providers;
- :mod:`.identity`: the identity functions see;
- :mod:`.users`: one deployment's providers and verifier, for HTTP and sync.
"""
