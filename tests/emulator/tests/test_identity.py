"""Entra token endpoint, IMDS, and the bearer-token check in front of ARM."""

import base64
import json
import os
import time

from conftest import CLIENT, SECRET, TENANT, Client, V2025, start_emulator, wait_for

ISSUER = "https://oidc.prod-aks.azure.com/abc/"
SUBJECT = "system:serviceaccount:acrpool-system:acrpool"
WI_CLIENT = "99999999-8888-7777-6666-555555555555"
SCOPE = "https://management.azure.com/.default"


def jwt(claims):
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'RS256', 'typ': 'JWT'})}.{enc(claims)}.c2ln"


def assertion(**over):
    claims = {"iss": ISSUER, "sub": SUBJECT, "aud": ["api://AzureADTokenExchange"],
              "exp": int(time.time()) + 600}
    claims.update(over)
    return jwt(claims)


def federated(client):
    client.control("POST", "identity/clients", {
        "tenantId": TENANT, "clientId": WI_CLIENT,
        "federatedCredentials": [{"issuer": ISSUER, "subject": SUBJECT, "audience": "api://AzureADTokenExchange"}]})


def wi_form(token):
    return {"grant_type": "client_credentials", "client_id": WI_CLIENT, "scope": SCOPE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token}


def test_client_secret_token_shape(client):
    r = client.token_request({"grant_type": "client_credentials", "client_id": CLIENT,
                              "client_secret": SECRET, "scope": SCOPE})
    assert r.status == 200
    body = r.json
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and isinstance(body["ext_expires_in"], int)
    assert body["access_token"].count(".") == 2


def test_wrong_secret_is_401_with_aadsts(client):
    r = client.token_request({"grant_type": "client_credentials", "client_id": CLIENT,
                              "client_secret": "wrong", "scope": SCOPE})
    assert r.status == 401
    assert r.json["error"] == "invalid_client" and r.json["error_codes"] == [7000215]
    assert r.json["error_description"].startswith("AADSTS7000215")


def test_unknown_client_and_bad_scope(client):
    r = client.token_request({"grant_type": "client_credentials", "client_id": "nobody",
                              "client_secret": "x", "scope": SCOPE})
    assert r.status == 400 and r.json["error_codes"] == [700016]
    r = client.token_request({"grant_type": "client_credentials", "client_id": CLIENT,
                              "client_secret": SECRET, "scope": "https://management.azure.com/"})
    assert r.status == 400 and r.json["error"] == "invalid_scope"


def test_basic_auth_client_secret(client):
    creds = base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
    r = client.request("POST", f"/{TENANT}/oauth2/v2.0/token",
                       raw_body=f"grant_type=client_credentials&scope={SCOPE}".encode(),
                       headers={"Authorization": f"Basic {creds}",
                                "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200, r


def test_workload_identity_assertion(client):
    federated(client)
    r = client.token_request(wi_form(assertion()))
    assert r.status == 200, r
    client.token = r.json["access_token"]
    assert client.arm("GET", "agentPools").status == 200


def test_workload_identity_failures(client):
    federated(client)
    r = client.token_request(wi_form(assertion(sub="system:serviceaccount:other:sa")))
    assert r.status == 400 and r.json["error_codes"] == [70021]
    r = client.token_request(wi_form(assertion(exp=int(time.time()) - 10)))
    assert r.status == 400 and r.json["error_codes"] == [700024]
    r = client.token_request(wi_form("not-a-jwt"))
    assert r.status == 400 and r.json["error"] == "invalid_client"


def test_imds(client):
    url = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
    r = client.request("GET", url)
    assert r.status == 400 and r.json["error"] == "invalid_request"
    client.control("POST", "identity/managed", {"clientId": "mi-client", "default": True})
    r = client.request("GET", url, headers={"Metadata": "true"})
    assert r.status == 200, r
    body = r.json
    assert body["token_type"] == "Bearer" and body["resource"] == "https://management.azure.com/"
    for k in ("expires_in", "expires_on", "not_before"):
        assert isinstance(body[k], str) and body[k].isdigit()
    assert client.request("GET", url + "&client_id=mi-client", headers={"Metadata": "true"}).status == 200
    assert client.request("GET", url + "&client_id=other", headers={"Metadata": "true"}).status == 400
    client.token = body["access_token"]
    assert client.arm("GET", "agentPools").status == 200


def test_arm_requires_a_live_issued_token(client):
    r = client.arm("GET", "agentPools", auth=False)
    assert (r.status, r.json["error"]["code"]) == (401, "AuthenticationFailed")
    assert r.header("WWW-Authenticate").startswith("Bearer")
    r = client.arm("GET", "agentPools", auth=False, headers={"Authorization": "Bearer " + jwt({"exp": 1})})
    assert (r.status, r.json["error"]["code"]) == (401, "InvalidAuthenticationToken")
    client.control("PATCH", "settings", {"tokenLifetimeSeconds": 2})
    client.login()
    assert client.arm("GET", "agentPools").status == 200
    wait_for(lambda: client.arm("GET", "agentPools").status == 401, timeout=5, interval=0.1, what="token expiry")
    r = client.arm("GET", "agentPools")
    assert r.json["error"]["code"] == "ExpiredAuthenticationToken"


def test_secrets_never_reach_logs(client, tmp_path):
    client.control("DELETE", "requests")
    client.login()
    entries = client.control("GET", "requests")["value"]
    token_entry = next(e for e in entries if e["path"].endswith("/oauth2/v2.0/token"))
    assert SECRET not in json.dumps(entries)
    assert token_entry["body"]["client_secret"].startswith("<redacted sha256:")


def test_no_auth_flag(tmp_path):
    proc, port = start_emulator(str(tmp_path), "--no-auth")
    try:
        c = Client(port)
        c.registry()
        assert c.arm("GET", "agentPools", version=V2025).status == 200
        log = open(os.path.join(str(tmp_path), "emulator.log")).read()
        assert "GET /subscriptions/" in log
    finally:
        proc.terminate()
        proc.wait(timeout=5)
