"""RSA for the Azure DevOps stand-in and the simulated agent, standard library only.

The Azure Pipelines agent keeps a 2048-bit RSA key (RSACryptoServiceProvider),
registers its public half with the pool as `authorization.publicKey`
{exponent, modulus} (base64 big-endian bytes, as .NET serialises byte[]),
and proves who it is by signing an RS256 JWT client assertion with the
private half. It stores the key as `.credentials_rsaparams`: the JSON of
its RSAParametersSerializable (src/Agent.Listener/Configuration/
IRSAKeyManager.cs in microsoft/azure-pipelines-agent): members
ContainerName, UseCng, d, dp, dq, exponent, inverseQ, modulus, p, q.

Here: key generation (Miller-Rabin), RSASSA-PKCS1-v1_5 with SHA-256 (sign
with the CRT, verify with one pow), and conversion to and from those two
JSON shapes. Not constant-time; for tests only.
"""

import base64
import hashlib
import json
import secrets

# DER of DigestInfo{sha256, NULL} without the digest (RFC 8017 section 9.2 note 1).
SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p ** 0.5) + 1))]


def _i2b(n, length=None):
    length = length or max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(length, "big")


def _b2i(data):
    return int.from_bytes(data, "big")


def _b64(data):
    return base64.b64encode(data).decode()


def _probable_prime(n, rounds=24):
    for p in SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        a = secrets.randbelow(n - 3) + 2
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits, e):
    while True:
        # Top two bits set so p*q has exactly 2*bits bits; odd.
        n = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if (n - 1) % e and _probable_prime(n):
            return n


class RsaKey:
    """An RSA key pair (or only the public half when d is None)."""

    def __init__(self, n, e, d=None, p=None, q=None):
        self.n, self.e, self.d, self.p, self.q = n, e, d, p, q
        if d is not None and p is not None and q is not None:
            self.dp, self.dq, self.qinv = d % (p - 1), d % (q - 1), pow(q, -1, p)

    @classmethod
    def generate(cls, bits=2048, e=65537):
        while True:
            p, q = _prime(bits // 2, e), _prime(bits // 2, e)
            if p == q:
                continue
            if p < q:
                p, q = q, p
            d = pow(e, -1, (p - 1) * (q - 1))
            return cls(p * q, e, d, p, q)

    @property
    def size(self):
        return (self.n.bit_length() + 7) // 8

    # -- PKCS#1 v1.5 with SHA-256 (JWS "RS256") ----------------------------------

    def _encoded(self, message):
        t = SHA256_PREFIX + hashlib.sha256(message).digest()
        return b"\x00\x01" + b"\xff" * (self.size - len(t) - 3) + b"\x00" + t

    def sign(self, message):
        if self.d is None:
            raise ValueError("public key only")
        m = _b2i(self._encoded(message))
        if self.p is not None:
            s1, s2 = pow(m, self.dp, self.p), pow(m, self.dq, self.q)
            s = s2 + ((self.qinv * (s1 - s2)) % self.p) * self.q
        else:
            s = pow(m, self.d, self.n)
        return _i2b(s, self.size)

    def verify(self, message, signature):
        if len(signature) != self.size:
            return False
        s = _b2i(signature)
        if s >= self.n:
            return False
        return secrets.compare_digest(_i2b(pow(s, self.e, self.n), self.size), self._encoded(message))

    # -- the agent's JSON shapes -------------------------------------------------------

    def public_key_json(self):
        """TaskAgentPublicKey: {exponent, modulus}, base64 big-endian bytes."""
        return {"exponent": _b64(_i2b(self.e)), "modulus": _b64(_i2b(self.n))}

    @classmethod
    def from_public_key_json(cls, obj):
        if not isinstance(obj, dict):
            raise ValueError("publicKey must be an object")
        try:
            e = _b2i(base64.b64decode(obj["exponent"], validate=True))
            n = _b2i(base64.b64decode(obj["modulus"], validate=True))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"publicKey needs base64 exponent and modulus: {exc}") from None
        if n.bit_length() < 512 or e < 3 or e % 2 == 0:
            raise ValueError("publicKey is not a usable RSA key")
        return cls(n, e)

    def rsaparams_json(self):
        """The agent's .credentials_rsaparams (RSAParametersSerializable).
        Byte arrays have the lengths .NET's ExportParameters gives."""
        half = self.size // 2
        return {"ContainerName": "", "UseCng": False,
                "d": _b64(_i2b(self.d, self.size)), "dp": _b64(_i2b(self.dp, half)),
                "dq": _b64(_i2b(self.dq, half)), "exponent": _b64(_i2b(self.e)),
                "inverseQ": _b64(_i2b(self.qinv, half)), "modulus": _b64(_i2b(self.n, self.size)),
                "p": _b64(_i2b(self.p, half)), "q": _b64(_i2b(self.q, half))}

    @classmethod
    def from_rsaparams_json(cls, obj):
        if isinstance(obj, (str, bytes)):
            obj = json.loads(obj)
        try:
            vals = {k: _b2i(base64.b64decode(obj[k], validate=True))
                    for k in ("d", "exponent", "modulus", "p", "q")}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an RSA parameters file: {exc}") from None
        key = cls(vals["modulus"], vals["exponent"], vals["d"], vals["p"], vals["q"])
        if key.p * key.q != key.n:
            raise ValueError("not an RSA parameters file: p*q != modulus")
        return key

    def fingerprint(self):
        """A short public identifier of the key (for logs and control answers)."""
        return hashlib.sha256(_i2b(self.n) + _i2b(self.e)).hexdigest()[:16]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_sign(key, claims, header=None):
    """A compact RS256 JWS."""
    head = {"typ": "JWT", "alg": "RS256"}
    head.update(header or {})
    signing_input = (b64url(json.dumps(head, separators=(",", ":")).encode()) + "."
                     + b64url(json.dumps(claims, separators=(",", ":")).encode()))
    return signing_input + "." + b64url(key.sign(signing_input.encode()))


def jwt_parse(token):
    """(header, claims, signing_input bytes, signature bytes) or None if malformed."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        return None
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims, (parts[0] + "." + parts[1]).encode(), signature
