#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets added with scripts/fuzz.sh (docs/fuzz.md § Corpus).

Seeds are real inputs, not invented ones: the configuration files of examples/ and the `toml` blocks of docs/;
the stored records of the journal's golden fixture (tests/fixtures/journal-v1, written by the codec when format
v1 was released); outbox envelopes around the operations the tenant tests send; the request bodies and query
strings of tests/common/route_recipes.rs (the recipe for every route). Run from the repository root:
    python3 fuzz/seeds.py && scripts/fuzz.sh 60 config_toml   # then minimize (docs/fuzz.md)
Existing files are overwritten; other files in the corpus directories are kept.
"""

import json
import pathlib
import re
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as the journal and the outbox compute it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the published check value


def write(target: str, name: str, data) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def config_toml() -> None:
    for path in sorted((ROOT / "examples").glob("*.toml")):
        write("config_toml", f"example_{path.stem}", path.read_text())
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for i, block in enumerate(re.findall(r"```toml\n(.*?)```", doc.read_text(), re.S)):
            write("config_toml", f"doc_{doc.stem}_{i}", block)
    write("config_toml", "set_override", "push.batch_size=500\ndomains.corp.poll_interval_secs = 5\n")


def journal_record() -> None:
    fixture = ROOT / "tests" / "fixtures" / "journal-v1" / "entries.hex"
    for n, line in enumerate(l for l in fixture.read_text().splitlines() if l and not l.startswith("#")):
        key_hex, value_hex = line.split()
        key, value = bytes.fromhex(key_hex), bytes.fromhex(value_hex)
        kind = {ord("e"): 0, ord("c"): 1, ord("k"): 2, ord("s"): 3}[key[0]]
        # Mode byte: even = the stored value as is; odd = the payload, framed by the target.
        write("journal_record", f"golden_{n:02}_stored", bytes([0]) + value)
        write("journal_record", f"golden_{n:02}_payload", bytes([1 + 2 * kind]) + value[16:])


def envelope(payload: bytes) -> bytes:
    return b"CSOB" + struct.pack(">HII", 1, len(payload), crc32c(payload)) + payload


PPH1 = "v1;PPH1_MD4,317ee9d1dec6508fa510,1000,7eaea8e1628dffee62cf319f4e1fc05254da30a1d42ff755ff352f5b13497531;"


def user_upsert(anchor: str, version: int, upn: str, name: str) -> dict:
    return {
        "op": "upsert", "kind": "user", "sourceAnchor": anchor, "version": version,
        "onPremises": {"samAccountName": name.lower().replace(" ", "."),
                       "distinguishedName": f"CN={name},OU=Staff,DC=corp,DC=example,DC=com",
                       "securityIdentifier": "S-1-5-21-1-2-3-1105", "domainName": "corp.example.com"},
        "attributes": {"displayName": name, "userPrincipalName": upn, "accountEnabled": True},
    }


OPERATIONS = [
    user_upsert("anchor-ann", 1, "ann@corp.example.com", "Ann"),
    {"op": "upsert", "kind": "group", "sourceAnchor": "anchor-staff", "version": 1,
     "attributes": {"displayName": "Staff", "securityEnabled": True, "mailEnabled": False}},
    {"op": "addMember", "groupAnchor": "anchor-staff", "memberAnchor": "anchor-ann"},
    {"op": "removeMember", "groupAnchor": "anchor-staff", "memberAnchor": "anchor-ann"},
    {"op": "delete", "kind": "contact", "sourceAnchor": "anchor-c", "version": 9},
    {"op": "setPasswordHash", "sourceAnchor": "anchor-ann", "version": 14, "credential": PPH1},
    {"op": "imageComplete", "version": 20, "keep": ["anchor-ann"]},
]
CONFIG_ID = "6f9619ff-8b86-d011-b42d-00c04fc964ff"


def outbox_record() -> None:
    for i, op in enumerate(OPERATIONS):
        record = {"configurationId": CONFIG_ID, "operation": op, "originSeq": 7 + i}
        if i == 0:
            record["reason"] = "ConfigurationChanged: scope, revision 7"
        payload = json.dumps(record, separators=(",", ":")).encode()
        write("outbox_record", f"op_{op['op']}_{i}_stored", bytes([0]) + envelope(payload))
        write("outbox_record", f"op_{op['op']}_{i}_payload", bytes([1]) + payload)
    quarantined = {"time": "2026-01-02T03:04:05Z", "configurationId": CONFIG_ID, "sourceAnchor": "anchor-bo",
                   "action": "upsert", "seq": 12, "batchId": "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
                   "code": "DuplicateUserPrincipalName", "message": "Another object has this UPN."}
    write("outbox_record", "quarantined", bytes([0]) + json.dumps(quarantined).encode())


def tenant_body() -> None:
    bodies = {
        0: {"batchId": "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", "operations": OPERATIONS,
            "reasons": {"0": "ConfigurationChanged: scope, revision 7"}, "epoch": 3},
        1: {"hostName": "dc9.corp.example.com", "version": "1.2.3", "environment": "AzureCloud",
            "domains": ["corp.example.com"]},
        2: {"version": "9.9.9", "acknowledgedRestarts": ["0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"],
            "binarySha256": "00" * 32},
        3: {"domains": ["corp.example.com", "third.example.com"]},
        4: {"domain": "corp.example.com", "passwordHashSync": True, "passwordWriteback": True,
            "deleteThreshold": 7},
        5: {"scopes": ["Full"]},
        6: {"version": "9.9.9"},
        7: {"latencyMs": 1, "errorRate": 0.1, "writes": {"capacity": 7000.0, "refillPerSecond": 23.3}},
        8: {"requests": [{"id": "1", "method": "GET", "url": f"/users/{CONFIG_ID}?$select=id,displayName"}]},
        9: {"userPrincipalName": "ann@corp.example.com", "password": "Not-the-Passw0rd"},
        10: {"userPrincipalName": "ann@corp.example.com"},
        11: {"userPrincipalName": "ann@corp.example.com", "code": "123456", "newPassword": "N3w-Passw0rd!"},
        12: {"newPassword": "N3w-Passw0rd!"},
        13: {"passwordProfile": {"password": "N3w-Passw0rd!", "forceChangePasswordNextSignIn": False}},
        14: {"publicKey": "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="},
        15: {"code": 0, "message": ""},
        16: {"enabled": True, "allowUnlock": True},
    }
    for kind, body in bodies.items():
        write("tenant_body", f"kind{kind:02}", bytes([kind]) + json.dumps(body).encode())
    write("tenant_body", "kind17_token", bytes([17]) + b"grant_type=client_credentials&client_id="
          + CONFIG_ID.encode() + b"&client_secret=s3cret&scope=api%3A%2F%2Fcloudsync%2F.default")
    write("tenant_body", "kind18_forms", bytes([18]) + b"username=ga%40contoso.onmicrosoft.com&password=pw&csrf=abc")


def tenant_query() -> None:
    for i, q in enumerate([
        "$select=id,displayName",
        "$top=5",
        "$filter=startswith(displayName,'Ann') and userPrincipalName eq 'o''neil@x.com'&$top=2",
        "$skiptoken=0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9&$select=displayName&custom=1",
        "objectId=6f9619ff-8b86-d011-b42d-00c04fc964ff&top=5",
        "userPrincipalName=ann%40corp.example.com",
        "waitSeconds=0",
        "$filter=displayName+eq+%27A%C3%BC%27",
    ]):
        write("tenant_query", f"recipe_{i}", q)


def expr_parse() -> None:
    """The expressions the evaluator's unit tests and docs/projection.md use, and the default mapping's."""
    texts = set()
    for src in sorted((ROOT / "crates" / "agent" / "src" / "projection" / "expr").glob("*.rs")):
        texts.update(re.findall(r'"([A-Za-z]+\(.{6,140}\))"', src.read_text()))
    texts.add("Trim(ToUpper([title]))")
    texts.add("IIF(IsPresent([mailNickname]), [mailNickname], [sAMAccountName])")
    for i, text in enumerate(sorted(texts)[:24]):
        write("expr_parse", f"test_{i:02}", text.replace('\\"', '"'))


def ntlm_challenge() -> bytes:
    """An NTLM CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2) with the §4.2.4 test values: flags e28a8233, server
    challenge 0123456789abcdef, target name "Server", the spec's target info, version 6.0.6000."""
    name = "Server".encode("utf-16-le")
    target_info = bytes.fromhex("02000c0044006f006d00610069006e0001000c0053006500720076006500720000000000")
    name_at = 56
    info_at = name_at + len(name)
    out = b"NTLMSSP\0" + struct.pack("<I", 2)
    out += struct.pack("<HHI", len(name), len(name), name_at)
    out += struct.pack("<I", 0xE28A8233) + bytes.fromhex("0123456789abcdef") + bytes(8)
    out += struct.pack("<HHI", len(target_info), len(target_info), info_at)
    out += bytes([6, 0]) + struct.pack("<H", 6000) + bytes(3) + bytes([15])
    return out + name + target_info


def rpc_pdu(ptype: int, body: bytes, auth: bytes = b"", call_id: int = 1) -> bytes:
    """A connection-oriented DCE/RPC PDU (C706 §12.6): common header, body, then with `auth` the padding to
    4, the 8-byte security trailer (NTLMSSP, packet privacy) and the auth value."""
    trailer = b""
    if auth:
        pad = (4 - (16 + len(body)) % 4) % 4
        body += bytes(pad)
        trailer = bytes([10, 6, pad, 0]) + struct.pack("<I", 0) + auth
    frag = 16 + len(body) + len(trailer)
    return bytes([5, 0, ptype, 3, 0x10, 0, 0, 0]) + struct.pack("<HHI", frag, len(auth), call_id) + body + trailer


def protocol() -> None:
    challenge = ntlm_challenge()
    write("drsr_ntlm", "spec_challenge", challenge)
    write("ntlmssp_ldap", "spec_challenge", challenge)
    ndr = bytes.fromhex("045d888aeb1cc9119fe808002b104860") + struct.pack("<I", 2)
    addr = b"49152\0"
    body = struct.pack("<HHI", 5840, 5840, 0x12345) + struct.pack("<H", len(addr)) + addr
    body += bytes((4 - (16 + len(body)) % 4) % 4)
    body += bytes([1, 0, 0, 0]) + struct.pack("<HH", 0, 0) + ndr
    write("drsr_pdu", "bind_ack_ntlm", rpc_pdu(12, body, challenge))
    write("drsr_pdu", "bind_ack", rpc_pdu(12, body))
    write("drsr_pdu", "bind_nak", rpc_pdu(13, struct.pack("<H", 2)))
    write("drsr_pdu", "fault_access_denied", rpc_pdu(3, struct.pack("<IHBBI", 24, 0, 0, 0, 5) + bytes(4)))
    write("phs_orgid", "pph1", PPH1)
    blob = re.search(r'DSINTERNALS_BLOB: &str = "([0-9a-f]+)"',
                     (ROOT / "crates/agent/src/account/gmsa_blob.rs").read_text()).group(1)
    write("gmsa_blob", "dsinternals", bytes.fromhex(blob))


if __name__ == "__main__":
    expr_parse()
    protocol()
    config_toml()
    journal_record()
    outbox_record()
    tenant_body()
    tenant_query()
