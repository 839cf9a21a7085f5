"""Entra ID token endpoint, IMDS endpoint and ARM bearer-token check for the emulator.

Owns the registered principals (service principals with secrets and federated
credentials, managed identities for IMDS) and every access token the emulator
has issued. Shapes follow reference/azure-identity-and-arm.md: the v2 endpoint
answers {token_type, expires_in, ext_expires_in, access_token} with integer
seconds; IMDS answers with *string* numbers and needs `Metadata: true`; errors
carry AADSTS codes in `error_codes` and `error_description`.

Tokens are JWT-shaped (header.payload.signature, base64url JSON) so a client
that peeks at `exp` works, but the emulator only trusts tokens it issued itself:
ARM calls are checked against the issued-token table, not by signature.
All methods are called with the emulator's state lock held by the caller, or
are self-locking where noted.
"""

import base64
import json
import secrets
import threading
import time
import uuid

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_jwt_claims(token):
    """Claims of a compact JWT, or None if it is not well formed. The
    signature is not verified (the emulator has no keys to check it with)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return claims


def make_jwt(claims):
    """An unsigned-looking JWT (alg none would upset some parsers; RS256 with a
    random signature segment is what a real token looks like on the wire)."""
    header = {"typ": "JWT", "alg": "RS256", "kid": "acr-emulator"}
    return ".".join([b64url(json.dumps(header).encode()),
                     b64url(json.dumps(claims).encode()),
                     b64url(secrets.token_bytes(32))])


class AADError(Exception):
    """A token-endpoint failure: HTTP status, OAuth `error`, AADSTS number."""

    def __init__(self, status, error, aadsts, description):
        super().__init__(description)
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def body(self):
        now = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        trace = str(uuid.uuid4())
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.aadsts}: {self.description} "
                                 f"Trace ID: {trace} Correlation ID: {uuid.uuid4()} Timestamp: {now}",
            "error_codes": [self.aadsts],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
            "error_uri": "https://login.microsoftonline.com/error?code=%d" % self.aadsts,
        }


class Identity:
    """Registered principals and issued tokens. Thread-safe (own lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            # client_id -> {"tenant", "secret", "federated": [{"issuer","subject","audience"}]}
            self.clients = {}
            # client_id -> {"objectId", "resourceId"} for IMDS; "" is the default (system) identity
            self.managed = {}
            self.tokens = {}  # access token -> {"exp", "appid", "tenant"}
            self.token_lifetime = 3600
            self.imds_lifetime = 86400

    # -- registration (control endpoint) -------------------------------------

    def add_client(self, tenant, client_id, secret=None, federated=None):
        with self.lock:
            entry = self.clients.setdefault(client_id, {"tenant": tenant, "secret": None, "federated": []})
            entry["tenant"] = tenant
            if secret is not None:
                entry["secret"] = secret
            for fc in federated or []:
                aud = fc.get("audience") or fc.get("audiences") or ["api://AzureADTokenExchange"]
                entry["federated"].append({
                    "issuer": fc["issuer"], "subject": fc["subject"],
                    "audiences": aud if isinstance(aud, list) else [aud]})

    def add_managed_identity(self, client_id="", default=False):
        with self.lock:
            self.managed[client_id] = {"objectId": str(uuid.uuid4())}
            if default:
                self.managed[""] = self.managed[client_id]

    def describe(self):
        """Registered principals without their secrets."""
        with self.lock:
            return {
                "clients": [{"clientId": c, "tenant": e["tenant"], "hasSecret": e["secret"] is not None,
                             "federated": e["federated"]} for c, e in self.clients.items()],
                "managedIdentities": sorted(self.managed),
                "tokenLifetimeSeconds": self.token_lifetime,
                "imdsTokenLifetimeSeconds": self.imds_lifetime,
            }

    # -- issuing ----------------------------------------------------------------

    def _issue(self, tenant, appid, audience, lifetime):
        issued = time.time()
        now = int(issued)
        claims = {"aud": audience, "iss": f"https://sts.windows.net/{tenant}/", "iat": now,
                  "nbf": now, "exp": now + lifetime, "appid": appid, "tid": tenant,
                  "oid": str(uuid.uuid4()), "sub": appid, "ver": "1.0"}
        token = make_jwt(claims)
        # Exact expiry, so a token asked to live 1 s lives 1 s, not 0 to 1 s.
        self.tokens[token] = {"exp": issued + lifetime, "appid": appid, "tenant": tenant, "aud": audience}
        return token, now

    def token_request(self, tenant, form, basic_auth=None):
        """Handle a v2 client-credentials request (form: dict of str). Return
        the JSON answer or raise AADError."""
        if form.get("grant_type") != "client_credentials":
            raise AADError(400, "unsupported_grant_type", 70003,
                           "The app requested an unsupported grant type "
                           f"'{form.get('grant_type', '')}'.")
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        if basic_auth and not client_id:
            client_id, secret = basic_auth
        if not client_id:
            raise AADError(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'client_id'.")
        scope = form.get("scope", "")
        if not scope:
            raise AADError(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'scope'.")
        if not scope.endswith("/.default"):
            raise AADError(400, "invalid_scope", 1002012,
                           f"The provided value for scope {scope} is not valid. Client credential "
                           "flows must have a scope value with /.default suffixed to the resource identifier.")
        with self.lock:
            entry = self.clients.get(client_id)
            tenant_ok = entry is not None and tenant in (entry["tenant"], "organizations", "common")
            if not tenant_ok:
                raise AADError(400, "unauthorized_client", 700016,
                               f"Application with identifier '{client_id}' was not found in the "
                               f"directory '{tenant}'.")
            if form.get("client_assertion") is not None or form.get("client_assertion_type") is not None:
                self._check_assertion(entry, client_id, form)
            elif secret is not None:
                if entry["secret"] is None or not secrets.compare_digest(secret, entry["secret"]):
                    raise AADError(401, "invalid_client", 7000215,
                                   "Invalid client secret provided. Ensure the secret being sent in the "
                                   f"request is the client secret value, not the client secret ID, for a "
                                   f"secret added to app '{client_id}'.")
            else:
                raise AADError(401, "invalid_client", 7000218,
                               "The request body must contain the following parameter: "
                               "'client_assertion' or 'client_secret'.")
            audience = scope[: -len("/.default")]
            token, _ = self._issue(entry["tenant"], client_id, audience, self.token_lifetime)
            return {"token_type": "Bearer", "expires_in": self.token_lifetime,
                    "ext_expires_in": self.token_lifetime, "access_token": token}

    def _check_assertion(self, entry, client_id, form):
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise AADError(400, "invalid_request", 700023,
                           "Invalid client_assertion_type, expected "
                           f"'{ASSERTION_TYPE}'.")
        claims = decode_jwt_claims(form.get("client_assertion") or "")
        if claims is None:
            raise AADError(400, "invalid_client", 50027,
                           "JWT token is invalid or malformed.")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp < time.time():
            raise AADError(400, "invalid_client", 700024,
                           "Client assertion is not within its valid time range.")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        for fc in entry["federated"]:
            if fc["issuer"] == claims.get("iss") and fc["subject"] == claims.get("sub") \
                    and any(a in fc["audiences"] for a in auds):
                return
        raise AADError(400, "invalid_client", 70021,
                       "No matching federated identity record found for presented assertion. "
                       f"Assertion Issuer: '{claims.get('iss')}'. Assertion Subject: "
                       f"'{claims.get('sub')}'. Assertion Audience: '{aud}'.")

    def imds_request(self, query, metadata_header):
        """IMDS GET /metadata/identity/oauth2/token. Return (status, body)."""
        if metadata_header != "true":
            return 400, {"error": "invalid_request",
                         "error_description": "Required metadata header not specified"}
        if not query.get("api-version"):
            return 400, {"error": "invalid_request",
                         "error_description": "Required query variable 'api-version' is missing"}
        resource = query.get("resource")
        if not resource:
            return 400, {"error": "invalid_request",
                         "error_description": "Required query variable 'resource' is missing"}
        client_id = query.get("client_id", "")
        with self.lock:
            if client_id not in self.managed:
                return 400, {"error": "invalid_request", "error_description": "Identity not found"}
            appid = client_id or "system-assigned"
            lifetime = self.imds_lifetime
            token, now = self._issue("imds", appid, resource.rstrip("/"), lifetime)
        return 200, {"access_token": token, "refresh_token": "", "expires_in": str(lifetime),
                     "expires_on": str(now + lifetime), "not_before": str(now),
                     "resource": resource, "token_type": "Bearer"}

    # -- checking -----------------------------------------------------------------

    def token_info(self, token):
        """A copy of what we know of an access token we issued ({exp, appid,
        tenant, aud}), or None. For services that check the audience
        (the Azure DevOps stand-in, devops.py)."""
        with self.lock:
            info = self.tokens.get(token)
            return dict(info) if info is not None else None

    def check_bearer(self, header):
        """None if `header` carries a live token we issued, else (code, message)."""
        if not header:
            return ("AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return ("AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is provided in an invalid format.")
        with self.lock:
            info = self.tokens.get(token.strip())
        if info is None:
            return ("InvalidAuthenticationToken",
                    "The access token is invalid.")
        if info["exp"] <= time.time():
            return ("ExpiredAuthenticationToken",
                    "The access token expiry UTC time '%s' is earlier than current UTC time '%s'." % (
                        time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(info["exp"])),
                        time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime())))
        return None
