"""Checks a security key registered and used at the kiosk with Yubico's
python-fido2, a WebAuthn implementation we did not write. Reads JSON on
standard input (base64url fields); exits non-zero on any mismatch."""
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from fido2 import cbor
from fido2.cose import CoseKey
from fido2.server import Fido2Server
from fido2.utils import websafe_decode
from fido2.webauthn import (AttestationObject, AttestedCredentialData,
                            PublicKeyCredentialRpEntity, UserVerificationRequirement)

d = json.load(sys.stdin)
stored_key = CoseKey.parse(cbor.decode(websafe_decode(d["cose_public_key"])))

# The key the kiosk stored is the one in the key's own attestation.
attestation = AttestationObject(websafe_decode(d["attestation_object"]))
credential = attestation.auth_data.credential_data
assert dict(credential.public_key) == dict(stored_key), "stored key differs from the attested one"
assert credential.credential_id == websafe_decode(d["credential_id"]), "credential ID differs"

# The assertion verifies under the stored key...
auth_data = websafe_decode(d["authenticator_data"])
client_data = websafe_decode(d["client_data_json"])
signature = websafe_decode(d["signature"])
stored_key.verify(auth_data + hashlib.sha256(client_data).digest(), signature)

# ...and passes a full relying-party check: RP ID hash, challenge, flags.
server = Fido2Server(PublicKeyCredentialRpEntity(name="check", id=d["rp_id"]))
state = {"challenge": d["challenge"], "user_verification": UserVerificationRequirement.REQUIRED}
credentials = [AttestedCredentialData.create(credential.aaguid, credential.credential_id, stored_key)]
response = {"id": d["credential_id"], "rawId": d["credential_id"], "type": "public-key",
            "response": {"authenticatorData": d["authenticator_data"],
                         "clientDataJSON": d["client_data_json"], "signature": d["signature"]}}
server.authenticate_complete(state, credentials, response)

# A signature changed by one bit does not verify: the check can fail.
tampered = bytearray(signature)
tampered[-1] ^= 1
try:
    stored_key.verify(auth_data + hashlib.sha256(client_data).digest(), bytes(tampered))
    sys.exit("a tampered signature verified")
except InvalidSignature:
    pass
print("verified by python-fido2")
