"""Checks a security key registration as the kiosk posted it to Entra
(Graph's fido2Methods body) with Yubico's python-fido2, a WebAuthn
implementation we did not write: the attestation and client data against
the challenge and relying party the tenant handed out. Reads JSON on
standard input; exits non-zero on any mismatch."""
import json
import sys

from fido2.server import Fido2Server
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import PublicKeyCredentialRpEntity, UserVerificationRequirement

d = json.load(sys.stdin)
credential = d["body"]["publicKeyCredential"]
response = {
    "id": credential["id"],
    "rawId": credential["id"],
    "type": "public-key",
    "response": {
        "clientDataJSON": credential["response"]["clientDataJSON"],
        "attestationObject": credential["response"]["attestationObject"],
    },
}
server = Fido2Server(PublicKeyCredentialRpEntity(name="Microsoft", id=d["rp_id"]))
state = {"challenge": d["challenge"], "user_verification": UserVerificationRequirement.REQUIRED}
auth = server.register_complete(state, response)
got = auth.credential_data.credential_id
assert got == websafe_decode(credential["id"]), f"credential id {got!r} vs {credential['id']}"

# Another challenge is refused: the check can fail.
other = bytearray(websafe_decode(d["challenge"]))
other[0] ^= 1
try:
    server.register_complete({**state, "challenge": websafe_encode(bytes(other))}, response)
    sys.exit("an answer to another challenge verified")
except ValueError:
    pass
print("verified by python-fido2")
