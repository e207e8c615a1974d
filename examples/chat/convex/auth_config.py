"""Sign-in providers: optional. With none, everyone is anonymous and picks a name.

This is Convex's `auth.config.ts`. A deploy checks the list's shape only and
never contacts a provider, so the chat deploys whether or not one is reachable.
Signed-in users post under their own name: see `_author` in messages.py.

Uncomment a provider and fill in your values. Unlike `auth.config.ts`, this
file cannot read the deployment's environment variables: they are set while
functions run, not while a deploy reads this file, so the values go here.
"""

providers = [
    # Clerk (or any OpenID Connect issuer: WorkOS, Keycloak, ...): the issuer URL of
    # your Clerk instance, and "convex", the audience of Clerk's "convex" JWT template.
    # {"domain": "https://verb-noun-42.clerk.accounts.dev", "applicationID": "convex"},
    #
    # Auth0: your tenant's domain and the application's client id.
    # {"domain": "https://your-tenant.us.auth0.com/", "applicationID": "<client id>"},
    #
    # Your own JWTs: an issuer, its JWKS (a URL or a data: URI) and one algorithm.
    # {
    #     "type": "customJwt",
    #     "issuer": "https://auth.example.com",
    #     "jwks": "https://auth.example.com/.well-known/jwks.json",
    #     "algorithm": "RS256",  # or "ES256"
    #     "applicationID": "chat",  # optional: when given, `aud` must contain it
    # },
]
