"""certificates_in_der_order: reorders only a well-formed token's certificate set, never fails."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from archiver.timestamping import certificates_in_der_order


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _token(certs: list[bytes] | None, after: bytes = b"") -> bytes:
    signed_data = _tlv(
        0x30,
        _tlv(0x02, b"\x03")
        + _tlv(0x31, b"")
        + _tlv(0x30, b"tstinfo")
        + (_tlv(0xA0, b"".join(certs)) if certs is not None else b"")
        + after,
    )
    content_info = _tlv(0x30, _tlv(0x06, b"\x2a\x86") + _tlv(0xA0, signed_data))
    return _tlv(0x30, _tlv(0x30, _tlv(0x02, b"\x00")) + content_info)


def test_the_certificates_are_put_in_der_order_and_nothing_else_moves():
    leaf, root = _tlv(0x30, b"\x02" * 300), _tlv(0x30, b"\x01" * 200)
    signer_infos = _tlv(0x31, b"signature")
    token = _token([leaf, root], signer_infos)
    assert certificates_in_der_order(token) == _token([root, leaf], signer_infos)
    assert certificates_in_der_order(_token([root, leaf])) == _token([root, leaf])


def test_a_token_without_certificates_is_left_alone():
    token = _token(None, _tlv(0x31, b"signature"))
    assert certificates_in_der_order(token) == token


@given(st.binary(max_size=300))
def test_any_bytes_come_back_the_same_length_without_an_error(data):
    assert len(certificates_in_der_order(data)) == len(data)


@given(st.binary(min_size=1, max_size=80), st.integers(min_value=0))
def test_a_truncated_token_is_returned_unchanged(body, cut):
    token = _token([_tlv(0x30, body), _tlv(0x30, b"\x00")])
    cut_token = token[: cut % len(token)]
    assert certificates_in_der_order(cut_token) == cut_token
