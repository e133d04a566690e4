#!/usr/bin/env python3
"""Regenerates tests/data/events/{good,bad}/ and bad/EXPECTED.

Each bad file is one malformed message, as a producer would send it (kcat -P
sends a whole file as one message, so JSON files hold one line and no
newline). EXPECTED maps each file to the codec_err_reason() token the
decoder must return. Run from anywhere: python3 gen_events.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def zz(v):
    z = (v << 1) ^ (v >> 63)
    z &= (1 << 64) - 1
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return zz(len(b)) + b


def avro(user="u1", item="i1", type_idx=0, ts=1700000000000, duration=None, weight=None,
         raw_weight=None):
    out = s(user) + s(item) + zz(type_idx) + zz(ts)
    out += zz(0) if duration is None else zz(1) + zz(duration)
    if raw_weight is not None:
        out += zz(1) + raw_weight
    else:
        out += zz(0) if weight is None else zz(1) + struct.pack("<f", weight)
    return out


def framed(schema_id, body):
    return b"\x00" + struct.pack(">i", schema_id) + body


def js(**fields):
    parts = []
    for k, v in fields.items():
        if isinstance(v, bytes):
            parts.append('"%s":"%s"' % (k, v.decode("latin-1")))
        elif isinstance(v, str):
            parts.append('"%s":"%s"' % (k, v))
        elif v is None:
            parts.append('"%s":null' % k)
        else:
            parts.append('"%s":%s' % (k, v))
    return ("{" + ",".join(parts) + "}").encode("latin-1")


BASE = dict(user_id="u1", item_id="song-1", type="LISTEN", ts=1700000000000)


def ev(**over):
    d = dict(BASE)
    for k, v in over.items():
        if v is ...:
            d.pop(k)
        else:
            d[k] = v
    return js(**d)


GOOD = {
    "listen.json": ev(duration_ms=215000),
    "view_iso_time.json": ev(type="view", ts="2023-11-14T22:13:20.123Z"),
    "like_weight_extra_field.json": ev(type="LIKE", weight=2.5, client="android"),
    "raw.avro": avro(type_idx=2, duration=1000, weight=1.5),
    "framed.avro": framed(1, avro(user="user-7", item="item-9")),
}

full = avro()
BAD = [
    ("empty.json", b"", "empty"),
    ("not_json.json", b'{"user_id":"u1","item_id":', "not_json"),
    ("plain_text.txt", b"hello world", "not_json"),
    ("duplicate_key.json", b'{"user_id":"a","user_id":"b","item_id":"i","type":"VIEW","ts":1}',
     "not_json"),
    ("missing_user.json", ev(user_id=...), "missing_field"),
    ("missing_type.json", ev(type=...), "missing_field"),
    ("missing_ts.json", ev(ts=...), "missing_field"),
    ("user_number.json", ev(user_id=42), "field_type"),
    ("ts_float.json", ev(ts=1.5), "field_type"),
    ("weight_string.json", ev(weight="heavy"), "field_type"),
    ("empty_user.json", ev(user_id=""), "id_empty"),
    ("empty_item.json", ev(item_id=""), "id_empty"),
    ("long_user.json", ev(user_id="x" * 257), "id_too_long"),
    ("bad_utf8_user.json", ev(user_id=b"caf\xe9"), "invalid_utf8"),
    ("nul_in_user.json", ev(user_id="a\\u0000b"), "invalid_utf8"),
    ("unknown_type.json", ev(type="SHARE"), "unknown_type"),
    ("negative_ts.json", ev(ts=-1), "bad_value"),
    ("bad_iso_time.json", ev(ts="2023-02-30T00:00:00Z"), "bad_value"),
    ("negative_duration.json", ev(duration_ms=-5), "bad_value"),
    ("negative_weight.json", ev(weight=-0.5), "bad_value"),
    ("trailing.json", ev() + b" trailing", "trailing_bytes"),
    ("truncated.avro", full[:-3], "truncated"),
    ("trailing.avro", full + b"\x02", "trailing_bytes"),
    ("unknown_type_index.avro", avro(type_idx=3), "unknown_type"),
    ("negative_type_index.avro", avro(type_idx=-1), "unknown_type"),
    ("huge_length.avro", zz(1 << 60) + b"abc", "truncated"),
    ("negative_length.avro", zz(-3) + b"abcdef", "bad_value"),
    ("long_varint.avro", b"\xff" * 11, "bad_value"),
    ("empty_item.avro", avro(item=""), "id_empty"),
    ("long_item.avro", avro(item="y" * 300), "id_too_long"),
    ("bad_utf8_item.avro", avro(item=b"\xc3\x28"), "invalid_utf8"),
    ("nan_weight.avro", avro(raw_weight=b"\x00\x00\xc0\x7f"), "bad_value"),
    ("negative_duration.avro", avro(duration=-1), "bad_value"),
    ("bad_union_branch.avro", avro()[:-2] + zz(2) + zz(0), "bad_value"),
    ("truncated_framed.avro", framed(1, full[:-1]), "truncated"),
    ("trailing_framed.avro", framed(1, full + b"\x00"), "trailing_bytes"),
]


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    for name, data in GOOD.items():
        write(os.path.join(HERE, "good", name), data)
    lines = ["# file reason: the codec_err_reason() token the decoder must return"]
    for name, data, reason in BAD:
        write(os.path.join(HERE, "bad", name), data)
        lines.append("%s %s" % (name, reason))
    write(os.path.join(HERE, "bad", "EXPECTED"), ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    main()
